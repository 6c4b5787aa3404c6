"""The store's query functions: what the hub service reads and writes.

Conventions:

* Every function takes a ``sqlmodel.Session`` first and runs inside the caller's unit of work
  (``with db.session() as s: ...``): it flushes, never commits, so several calls can form one
  transaction (``consume_token`` + ``register_cluster``: a refused registration spends no token use).
  Sessions are not shared between threads; the service runs each unit in a worker thread.
* ``now`` is an aware UTC datetime, defaulting to the current time; tests pass it explicitly.
* Functions that change state record their own event (token created/used/revoked, registration,
  paused/resumed, commit seen/refused, desired changed, render error, applied/status/drift from
  ``save_status``). The caller records only what the store cannot see: refusals
  (``registration_refused``) and hub lifecycle events, through :func:`add_event`.
* Rows are returned detached-safe (the session does not expire them on commit).

One module per record kind, re-exported here so callers write ``repository.get_cluster(...)``:
``tokens``, ``clusters``, ``commits``, ``bundles``, ``desired``, ``status``, ``render_errors``,
``event_log`` (``events`` below), ``hub_state`` and ``rollouts``; ``_common`` holds the helpers they share
(clock default, bulk upserts, bounded text).

API (keyword arguments after the first positional ones):

tokens      create_token(s, *, ttl, uses, labels, description, cluster_name, name_prefix) -> (row, token)
            consume_token(s, token, *, name, declared) -> BootstrapToken
                        raises TokenRefused(reason), TokenNotForName (binding), DeclaredNamesUnknown
                        = usable_token(s, token, *, name, declared) then spend_token_use(s, row)
            revoke_token(s, token_id) -> bool; get_token(s, token_id); list_tokens(s)
clusters    register_cluster(s, *, name, labels, credential_hash, token=None) -> Cluster   ClusterExists
            authenticate_cluster(s, credential) -> Cluster | None
            find_credential(s, credential, *, grace) -> CredentialMatch | None   (current or rotated-to)
            request_rotation(s, name); issue_next_credential(s, name, hash) -> bool;
            promote_credential(s, name, hash) -> bool           (credential rotation)
            get_cluster(s, name); list_clusters(s); touch_cluster(s, name); touch_clusters(s, names)
            mark_connected(s, [(name, at)]); mark_disconnected(s, name, opened_at=...)   (hub.presence)
            deregistered(s, names) -> the names once registered and since removed
            remove_cluster(s, name) -> bool    (frees the name; history and events stay)
            set_paused(s, names, paused) -> changed names       raises UnknownCluster
            set_pinned(s, name, digest | None)                  (rollback pins)
commits     record_commit(s, *, sha, author, authored_at, message, signature_verdict, signature_detail,
                          accepted, refusal_reason) -> SeenCommit
            get_commit(s, sha); recent_commits(s, limit)
bundles     put_bundle(s, *, digest, compressed, size, signature) -> bool created (one row per digest)
            get_bundle(s, digest) -> Bundle | None; bundle_meta(s, digest) -> BundleMeta | None
            prune_bundles(s, *, keep_last=20, min_age=0) -> number deleted
            bundle_refs(s, cluster | None) -> [BundleRef] (cluster, commit, digest, latest): OCI tags
desired     set_desired(s, *, cluster, commit, digest) -> bool changed (+ history + event)
            set_desired_many(s, items) -> changed cluster names
            get_desired(s, cluster); desired_all(s) -> {cluster: DesiredState}
            desired_history(s, cluster, limit); was_desired_for(s, cluster, digest) -> bool
status      save_status(s, StatusInput) -> StatusChange; save_statuses(s, [StatusInput]) -> [StatusChange]
            get_status(s, cluster); statuses(s) -> {cluster: ClusterStatus}
            applied_phases(s) -> {cluster: (applied digest, phase)}
            report_times(s) -> {cluster: when its last report was received}
render      set_render_errors(s, *, cluster, commit, errors); clear_render_errors(s, cluster) -> bool
            render_errors_all(s) -> {cluster: RenderError}
events      add_event(s, kind, *, cluster, commit, digest, message, details, aggregate) -> Event
            events(s, *, cluster, since, after_id, kinds, limit=200) -> oldest-first list of the newest
            prune_events(s, *, before, keep) -> number deleted
admin creds create_admin_credential(s, name, *, created_by) -> (row, secret)   StoreError (name taken)
            admin_credential_name(s, credential) -> name | None (valid only); list_admin_credentials(s)
            revoke_admin_credential(s, name, *, by) -> bool
hub state   get_state(s, key) -> str | None; set_state(s, key, value)   (keys: StateKey)
            states_with_prefix(s, prefix) -> [HubState]; delete_states(s, keys)
rollouts    insert_rollout(s, *, commit, state, document) -> RolloutRow (seq assigned)
            save_rollout(s, seq, *, state, document); get_rollout(s, seq); latest_rollout(s)
            commit_of_desired(s, cluster, digest) -> the commit that last made digest desired there
oci pushes  oci_pushes(s, target) -> {(cluster, commit, digest): PushRecord}   (what --oci-push pushed)
            oci_manifests(s, target, keys) -> {key: manifest digest}; record_oci_pushes(s, target, records)
            forget_oci_pushes(s, target, keys) -> number deleted
            oci_push_backlog(s, target) -> PushBacklog (pending, oldest_seconds): convoy status
"""

from __future__ import annotations

from hub.store.repository.admin_credentials import (
    BOOTSTRAP_ADMIN,
    admin_credential_name,
    create_admin_credential,
    list_admin_credentials,
    revoke_admin_credential,
)
from hub.store.repository.bundles import (
    BundleMeta,
    BundleRef,
    bundle_meta,
    bundle_metas,
    bundle_refs,
    existing_bundles,
    get_bundle,
    prune_bundles,
    put_bundle,
    put_bundles,
)
from hub.store.repository.clusters import (
    DEFAULT_ROTATION_GRACE,
    CredentialMatch,
    RenderInputs,
    authenticate_cluster,
    deregistered,
    find_credential,
    get_cluster,
    issue_next_credential,
    list_clusters,
    mark_connected,
    mark_disconnected,
    pinned_names,
    promote_credential,
    register_cluster,
    remove_cluster,
    render_inputs,
    request_age_rotation,
    request_rotation,
    set_age_recipient,
    set_paused,
    set_pinned,
    touch_cluster,
    touch_clusters,
)
from hub.store.repository.commits import (
    get_commit,
    recent_commits,
    record_commit,
)
from hub.store.repository.desired import (
    DesiredRow,
    WatchRow,
    desired_all,
    desired_history,
    get_desired,
    set_desired,
    set_desired_many,
    was_desired_for,
    watch_rows,
)
from hub.store.repository.event_log import (
    MAX_EVENT_MESSAGE_CHARS,
    add_event,
    events,
    prune_events,
)
from hub.store.repository.hub_state import (
    StateKey,
    delete_states,
    get_state,
    set_state,
    states_with_prefix,
)
from hub.store.repository.oci_pushes import (
    PushBacklog,
    PushKey,
    PushRecord,
    forget_oci_pushes,
    needs_push,
    oci_manifests,
    oci_push_backlog,
    oci_pushes,
    push_backlog,
    record_oci_pushes,
)
from hub.store.repository.render_errors import (
    MAX_RENDER_ERROR_CHARS,
    MAX_RENDER_ERRORS,
    clear_render_errors,
    render_errors_all,
    set_render_errors,
)
from hub.store.repository.rollouts import (
    commit_of_desired,
    get_rollout,
    insert_rollout,
    latest_rollout,
    save_rollout,
)
from hub.store.repository.status import (
    EVENT_MESSAGE_EXCERPT,
    StatusChange,
    StatusInput,
    applied_phases,
    get_status,
    report_times,
    save_status,
    save_statuses,
    statuses,
)
from hub.store.repository.tokens import (
    consume_token,
    create_token,
    get_token,
    list_tokens,
    revoke_token,
    spend_token_use,
    usable_token,
)

__all__ = [
    "BOOTSTRAP_ADMIN",
    "DEFAULT_ROTATION_GRACE",
    "EVENT_MESSAGE_EXCERPT",
    "MAX_EVENT_MESSAGE_CHARS",
    "MAX_RENDER_ERRORS",
    "MAX_RENDER_ERROR_CHARS",
    "BundleMeta",
    "BundleRef",
    "CredentialMatch",
    "DesiredRow",
    "PushBacklog",
    "PushKey",
    "PushRecord",
    "RenderInputs",
    "StateKey",
    "StatusChange",
    "StatusInput",
    "WatchRow",
    "add_event",
    "admin_credential_name",
    "applied_phases",
    "authenticate_cluster",
    "bundle_meta",
    "bundle_metas",
    "bundle_refs",
    "clear_render_errors",
    "commit_of_desired",
    "consume_token",
    "create_admin_credential",
    "create_token",
    "delete_states",
    "deregistered",
    "desired_all",
    "desired_history",
    "events",
    "existing_bundles",
    "find_credential",
    "forget_oci_pushes",
    "get_bundle",
    "get_cluster",
    "get_commit",
    "get_desired",
    "get_rollout",
    "get_state",
    "get_status",
    "get_token",
    "insert_rollout",
    "issue_next_credential",
    "latest_rollout",
    "list_admin_credentials",
    "list_clusters",
    "list_tokens",
    "mark_connected",
    "mark_disconnected",
    "needs_push",
    "oci_manifests",
    "oci_push_backlog",
    "oci_pushes",
    "pinned_names",
    "promote_credential",
    "prune_bundles",
    "prune_events",
    "push_backlog",
    "put_bundle",
    "put_bundles",
    "recent_commits",
    "record_commit",
    "record_oci_pushes",
    "register_cluster",
    "remove_cluster",
    "render_errors_all",
    "render_inputs",
    "report_times",
    "request_age_rotation",
    "request_rotation",
    "revoke_admin_credential",
    "revoke_token",
    "save_rollout",
    "save_status",
    "save_statuses",
    "set_age_recipient",
    "set_desired",
    "set_desired_many",
    "set_paused",
    "set_pinned",
    "set_render_errors",
    "set_state",
    "spend_token_use",
    "states_with_prefix",
    "statuses",
    "touch_cluster",
    "touch_clusters",
    "usable_token",
    "was_desired_for",
    "watch_rows",
]
