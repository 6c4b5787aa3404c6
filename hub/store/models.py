"""Every table of the hub's database, in one module (the SQLModel way).

Tables::

    clusters                registered clusters: labels, credential hash (and a pending rotation's), paused, pin
    bootstrap_tokens        registration tokens, secret stored hashed, optionally bound to a name or prefix
    commits                 every fleet commit the hub has seen, accepted or refused, with why
    bundles                 one row per distinct digest: compressed canonical bytes + signature
    desired_states          one row per cluster: the commit and digest it should run now
    desired_state_history   append-only: every desired change (drives retention and GetBundle rights)
    cluster_status          one row per cluster: its latest report, with summary counts
    render_errors           one row per cluster whose latest render failed
    hub_state               key/value: last deployed commit, fleet commit, ... (see repository)
    events                  append-only audit log that ``convoy history`` reads
    rollouts                one row per progressive rollout: its state machine as JSON

Times are timezone-aware UTC in Python on both databases (:class:`UTCDateTime`). Enumerations are
stored as their string values, so adding a member never needs a database enum migration. A change
to this module needs an Alembic version under ``migrations/versions``; a test compares the two.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

__all__ = [
    "BootstrapToken",
    "Bundle",
    "Cluster",
    "ClusterStatus",
    "DesiredState",
    "DesiredStateHistory",
    "Event",
    "EventKind",
    "HubState",
    "RenderError",
    "RolloutRow",
    "SeenCommit",
    "UTCDateTime",
    "utcnow",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both databases.

    SQLite has no time zones: values are stored as naive UTC there and given their zone back on
    read, so comparisons in SQL and in Python agree.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; pass an aware UTC time")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


#: JSON everywhere, JSONB on PostgreSQL (smaller, indexable later).
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
#: 64-bit ids on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

DIGEST_LEN = 71   # "sha256:" + 64 hex
SHA_LEN = 64      # SHA-1 (40) or SHA-256 (64) commit ids
NAME_LEN = 253    # a DNS subdomain


class EventKind(enum.StrEnum):
    """What an event-log entry records."""

    COMMIT_SEEN = "commit_seen"                    #: a new fleet commit was fetched and accepted
    COMMIT_REFUSED = "commit_refused"              #: a commit was refused (history rewrite, signature)
    RENDER_ERROR = "render_error"                  #: a cluster's bundle could not be rendered
    DESIRED_CHANGED = "desired_changed"            #: a cluster's desired digest changed
    APPLIED = "applied"                            #: a spoke reported a new applied digest
    DRIFT = "drift"                                #: a spoke found drift (corrects it, leaves it, or failed to)
    DRIFT_CORRECTED = "drift_corrected"            #: a spoke corrected drift (fields re-applied, object recreated)
    DRIFT_CLEARED = "drift_cleared"                #: drift left in place went away (reverted, new bundle)
    STATUS = "status"                              #: a spoke's phase changed
    TOKEN_CREATED = "token_created"
    TOKEN_USED = "token_used"
    TOKEN_REVOKED = "token_revoked"
    REGISTRATION = "registration"                  #: a cluster registered
    REGISTRATION_REFUSED = "registration_refused"  #: a registration was refused (token, name taken)
    AGE_KEY = "age_key"                            #: the hub learned a cluster's (new) public age key
    DEREGISTERED = "deregistered"                  #: an administrator removed a cluster's registration
    CREDENTIAL_ROTATION = "credential_rotation"    #: a cluster credential rotation was asked for / completed
    PAUSED = "paused"
    RESUMED = "resumed"
    PINNED = "pinned"                              #: an administrator pinned a cluster to a bundle
    UNPINNED = "unpinned"                          #: ... and released the pin
    ROLLOUT = "rollout"                            #: a rollout note without a more precise kind
    # Rollout transitions (hub.rollout.planning emits these kinds).
    ROLLOUT_STARTED = "rollout_started"
    ROLLOUT_SUPERSEDED = "rollout_superseded"      #: a newer commit started a new rollout
    WAVE_RELEASED = "wave_released"                #: a wave's clusters were given the new bundle
    WAVE_BAKING = "wave_baking"                    #: a wave is Ready; its bake time runs
    WAVE_PROGRESSING = "wave_progressing"          #: a baking wave lost readiness
    WAVE_DONE = "wave_done"
    ROLLOUT_DONE = "rollout_done"
    ROLLOUT_FAILED = "rollout_failed"              #: a wave failed with onFailure: pause
    ROLLOUT_ROLLED_BACK = "rollout_rolled_back"    #: a wave failed; released clusters went back
    ROLLOUT_PAUSED = "rollout_paused"
    ROLLOUT_RESUMED = "rollout_resumed"
    ROLLOUT_ABORTED = "rollout_aborted"
    ROLLOUT_PROMOTED = "rollout_promoted"
    WAVE_SKIPPED = "wave_skipped"                  #: a wave with no present cluster, under emptyWave: skip
    WAVE_WAITING_APPROVAL = "wave_waiting_approval"  #: a wave's turn came; it waits for an admin's approval
    APPROVED = "approved"                          #: an admin credential approved a wave (name, comment)
    ADMIN_CREDENTIAL = "admin_credential"          #: a named admin credential was created or revoked
    HUB = "hub"                                    #: hub lifecycle: started, leader, stopped


class Cluster(SQLModel, table=True):
    __tablename__ = "clusters"

    name: str = Field(primary_key=True, max_length=NAME_LEN)
    labels: dict[str, str] = Field(default_factory=dict, sa_column=sa.Column(JSONType, nullable=False))
    registered_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    last_seen: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    credential_hash: str = Field(max_length=80, unique=True, index=True)
    paused: bool = Field(default=False)
    #: A digest the cluster is held at regardless of the fleet commit (rollback pin).
    pinned_digest: str | None = Field(default=None, max_length=DIGEST_LEN)
    #: The id of the bootstrap token it registered with.
    token_id: str | None = Field(default=None, max_length=32)
    #: Credential rotation (``convoy cluster rotate-credential``): when it was asked for (None: none
    #: pending), the hash of the new credential handed to the spoke, and when it was handed over.
    #: The old credential keeps working until the spoke first uses the new one, or a grace period
    #: after the hand-over, whichever comes first.
    rotation_requested_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(),
                                                                                        nullable=True))
    next_credential_hash: str | None = Field(default=None, max_length=80, unique=True, index=True)
    next_credential_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    #: When its latest Watch stream opened, and when its last one ended (None while one is open);
    #: :mod:`hub.presence` turns them and ``last_seen`` into online/offline.
    connected_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    disconnected_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    #: Sealed secrets: the public age recipient its spoke made in the cluster (the private
    #: key never leaves it), and when the hub learned it.
    age_recipient: str | None = Field(default=None, max_length=128)
    age_recipient_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    #: ``convoy keys rotate``: when a new key was asked of the spoke (None: none pending), and the key
    #: it replaced, still accepted at render time for files not yet re-sealed (the spoke keeps it too).
    age_rotation_requested_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(),
                                                                                            nullable=True))
    age_recipient_previous: str | None = Field(default=None, max_length=128)


class BootstrapToken(SQLModel, table=True):
    __tablename__ = "bootstrap_tokens"

    id: str = Field(primary_key=True, max_length=32)
    secret_hash: str = Field(max_length=80)
    expires_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    uses_left: int
    labels: dict[str, str] = Field(default_factory=dict, sa_column=sa.Column(JSONType, nullable=False))
    description: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    revoked: bool = Field(default=False)
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    #: The only cluster name that may register with it (None: not bound to one name).
    cluster_name: str | None = Field(default=None, max_length=NAME_LEN)
    #: ... or the prefix every name registered with it must start with; "" binds it to any name, declared
    #: in Git or not. None on both: unbound (any name the fleet repository does not declare).
    name_prefix: str | None = Field(default=None, max_length=NAME_LEN)


class AdminCredential(SQLModel, table=True):
    """A named admin credential made with ``convoy credential create`` (the hub's own first-start
    credential, named ``admin``, lives in its identity directory, not here). Only the hash is stored."""

    __tablename__ = "admin_credentials"

    name: str = Field(primary_key=True, max_length=NAME_LEN)
    secret_hash: str = Field(max_length=80, unique=True, index=True)
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    created_by: str = Field(default="", max_length=NAME_LEN)
    #: When it was revoked (None: valid). A revoked name stays taken, so history never names two holders.
    revoked_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))


class SeenCommit(SQLModel, table=True):
    __tablename__ = "commits"

    sha: str = Field(primary_key=True, max_length=SHA_LEN)
    author: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    authored_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    message: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    signature_verdict: str = Field(default="not-checked", max_length=32)
    signature_detail: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    seen_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    accepted: bool
    refusal_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))


class Bundle(SQLModel, table=True):
    __tablename__ = "bundles"

    digest: str = Field(primary_key=True, max_length=DIGEST_LEN)
    #: zlib-compressed canonical bytes (``protos.bundle.compress``).
    data: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    size: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    compressed_size: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    signature: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class DesiredState(SQLModel, table=True):
    __tablename__ = "desired_states"

    cluster: str = Field(primary_key=True, max_length=NAME_LEN)
    commit: str = Field(max_length=SHA_LEN)
    # The bundle must exist while it is desired: retention can never remove a bundle in use.
    digest: str = Field(sa_column=sa.Column(sa.String(DIGEST_LEN), sa.ForeignKey("bundles.digest"),
                                            nullable=False, index=True))
    since: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class DesiredStateHistory(SQLModel, table=True):
    __tablename__ = "desired_state_history"
    __table_args__ = (sa.Index("ix_desired_state_history_cluster_id", "cluster", "id"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    cluster: str = Field(max_length=NAME_LEN)
    commit: str = Field(max_length=SHA_LEN)
    digest: str = Field(max_length=DIGEST_LEN, index=True)
    since: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class OciPush(SQLModel, table=True):
    """A bundle artifact the ``--oci-push`` pusher put into ``target`` (``REGISTRY/REPOSITORY``): shared by
    replicas, so Watch on any of them can announce it, ``convoy status`` can show the push lag, and a new
    leader pushes only what is still missing."""

    __tablename__ = "oci_pushes"

    target: str = Field(primary_key=True, max_length=NAME_LEN)
    cluster: str = Field(primary_key=True, max_length=NAME_LEN)
    commit: str = Field(primary_key=True, max_length=SHA_LEN)
    digest: str = Field(primary_key=True, max_length=DIGEST_LEN)
    manifest_digest: str = Field(max_length=DIGEST_LEN)
    #: the ``<cluster>-latest`` tag names this manifest (at most one row per cluster and target)
    latest: bool = False
    #: the signature manifest and the referrers fallback index, space-separated: deleted with it
    companions: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    pushed_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class ClusterStatus(SQLModel, table=True):
    __tablename__ = "cluster_status"

    cluster: str = Field(primary_key=True, max_length=NAME_LEN)
    applied_commit: str = Field(default="", max_length=SHA_LEN)
    applied_digest: str = Field(default="", max_length=DIGEST_LEN)
    #: a ``protos.status.Phase`` value
    phase: str = Field(default="Unknown", max_length=32)
    objects: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(JSONType, nullable=False))
    drift: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(JSONType, nullable=False))
    errors: list[str] = Field(default_factory=list, sa_column=sa.Column(JSONType, nullable=False))
    message: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    # Summary counts, kept so the fleet table never parses the JSON columns.
    objects_total: int = 0
    objects_ready: int = 0
    drift_count: int = 0
    observed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    spoke_version: str = Field(default="", max_length=64)
    backlog: int = 0
    updated_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class RenderError(SQLModel, table=True):
    __tablename__ = "render_errors"

    cluster: str = Field(primary_key=True, max_length=NAME_LEN)
    commit: str = Field(max_length=SHA_LEN)
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(JSONType, nullable=False))
    at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class HubState(SQLModel, table=True):
    __tablename__ = "hub_state"

    key: str = Field(primary_key=True, max_length=128)
    value: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    updated_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (sa.Index("ix_events_cluster_id", "cluster", "id"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    #: an :class:`EventKind` value
    kind: str = Field(max_length=40)
    cluster: str | None = Field(default=None, max_length=NAME_LEN)
    commit: str | None = Field(default=None, max_length=SHA_LEN)
    digest: str | None = Field(default=None, max_length=DIGEST_LEN)
    message: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    details: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONType, nullable=True))


class RolloutRow(SQLModel, table=True):
    """One progressive rollout; ``document`` is ``hub.rollout.planning.Rollout.to_document()``."""

    __tablename__ = "rollouts"

    seq: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    commit: str = Field(max_length=SHA_LEN)
    #: a ``hub.rollout.planning.RolloutState`` value, kept beside the document for queries
    state: str = Field(max_length=32, index=True)
    document: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONType, nullable=False))
    started_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
