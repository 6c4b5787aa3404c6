"""The rollout controller's decisions on a real store (SQLite and PostgreSQL): targets, waves, failure,
supersession, pins.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from hub import notify, presence
from hub.fleet import model
from hub.rollout import controller as ctl
from hub.rollout import planning
from hub.security import secrets as hub_secrets
from hub.store import repository as store
from hub.store.db import Database, default_sqlite_url
from protos import bundle as bundles
from protos import sops

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
LABELS = {"canary-1": {"canary": "true"}, "prod-1": {"env": "prod"}, "prod-2": {"env": "prod"},
          "same-1": {"env": "prod"}}

FLEET_DOC: dict[str, Any] = {
    "apiVersion": "convoy.dev/v1alpha1", "kind": "Fleet",
    "apps": [{"name": "db", "path": "apps/db"}, {"name": "web", "path": "apps/web", "dependsOn": ["db"]}],
    "rollout": {"bakeTime": "10s", "progressDeadline": "1m", "onFailure": "rollback",
                "waves": [{"name": "canary", "selector": {"matchLabels": {"canary": "true"}}}]},
}


def bundle_doc(**apps: str) -> dict[str, Any]:
    """A bundle with one ConfigMap per app whose data is the given version."""
    return {"apiVersion": bundles.API_VERSION, "kind": "Bundle",
            "apps": [{"name": name} for name in sorted(apps)],
            "objects": [{"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": name, "namespace": "default", "labels": {bundles.LABEL_APP: name}},
                         "data": {"version": version}} for name, version in sorted(apps.items())]}


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = default_sqlite_url(tmp_path)
    else:
        server = sa.make_url(request.getfixturevalue("postgres_url"))
        name = f"convoy_rollouts_{secrets.token_hex(6)}"
        admin = f"postgresql://{server.username}@{server.host}:{server.port}/{server.database}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        request.addfinalizer(lambda: _drop(admin, name))
        url = server.set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    database.migrate()
    with database.session() as s:
        for name, labels in {**LABELS, "new-1": {"env": "prod"}}.items():
            store.register_cluster(s, name=name, labels=labels, now=T0,
                                   credential_hash=hub_secrets.hash_secret(hub_secrets.new_credential()))
    yield database
    database.dispose()


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def controller(db: Database) -> ctl.RolloutController:
    return ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: T0)


def put(db: Database, doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    data = bundles.encode(doc)
    digest = bundles.digest_of(data)
    with db.session() as s:
        if store.bundle_meta(s, digest) is None:
            store.put_bundle(s, digest=digest, compressed=bundles.compress(data), size=len(data), signature=b"s",
                             now=T0)
    return digest, dict(doc)


def sync(controller: ctl.RolloutController, db: Database, commit: str, docs: Mapping[str, Mapping[str, Any]],
         *, fleet: model.Fleet | None = None, now: dt.datetime = T0, full: bool = True,
         labels: Mapping[str, Mapping[str, str]] | None = None) -> ctl.SyncPlan:
    """What HubService does with a render: store bundles, set desired for clusters not held, let the gate start."""
    rendered = {}
    known = {**LABELS, **(labels or {})}
    for name, doc in docs.items():
        digest, stored = put(db, doc)
        rendered[name] = ctl.Rendered(digest=digest, labels=known.get(name, {"env": "prod"}), bundle=stored)
    with controller.sync(commit=commit, fleet=fleet or model.parse_fleet(FLEET_DOC), rendered=rendered, full=full,
                         now=now) as plan, db.session() as s:
        store.set_desired_many(s, [(n, commit, r.digest) for n, r in rendered.items() if n not in plan.hold], now=now)
    return plan


def desired(db: Database) -> dict[str, str]:
    with db.session(write=False) as s:
        return {name: row.digest for name, row in store.desired_all(s).items()}


def report(db: Database, cluster: str, digest: str, phase: str = "Ready", now: dt.datetime = T0) -> None:
    with db.session() as s:
        store.save_status(s, store.StatusInput(cluster=cluster, phase=phase, applied_commit="", applied_digest=digest),
                          now=now)


def latest(db: Database) -> planning.Rollout:
    with db.session(write=False) as s:
        row = store.latest_rollout(s)
        assert row is not None
        return planning.Rollout.from_document(row.document)


def kinds(db: Database) -> list[str]:
    with db.session(write=False) as s:
        return [e.kind for e in store.events(s, limit=1000) if e.kind.startswith(("rollout", "wave"))]


V1 = {name: bundle_doc(db="1", web="1") for name in LABELS}
V2 = {name: bundle_doc(db="1", web="2") for name in LABELS} | {"same-1": bundle_doc(db="1", web="1")}


def first_commit(controller: ctl.RolloutController, db: Database) -> dict[str, str]:
    plan = sync(controller, db, C1, V1)
    assert plan.hold == frozenset() and plan.start is None  # nothing had a bundle: everyone at once
    return desired(db)


def test_only_changed_clusters_that_had_a_bundle_are_targets_and_wave_one_goes_first(
        controller: ctl.RolloutController, db: Database) -> None:
    before = first_commit(controller, db)
    plan = sync(controller, db, C2, {**V2, "new-1": bundle_doc(db="1", web="2")})
    rollout = latest(db)
    assert set(rollout.targets) == {"canary-1", "prod-1", "prod-2"}      # same-1 unchanged, new-1 new
    assert [(w.name, w.clusters) for w in rollout.waves] == [("canary", ("canary-1",)),
                                                           ("rest", ("prod-1", "prod-2"))]
    assert plan.changed == ["canary-1"]
    now = desired(db)
    assert now["canary-1"] == put(db, V2["canary-1"])[0]
    assert now["prod-1"] == before["prod-1"] and now["prod-2"] == before["prod-2"]
    assert now["same-1"] == before["same-1"]
    assert "new-1" in now                                                 # a new cluster is not held back
    assert kinds(db) == ["rollout_started", "wave_released"]


def test_next_wave_only_after_ready_and_bake_time(controller: ctl.RolloutController, db: Database) -> None:
    first_commit(controller, db)
    sync(controller, db, C2, V2)
    target = put(db, V2["canary-1"])[0]
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=1)) == []          # not reported yet
    report(db, "canary-1", target)
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=2)) == []          # Ready: baking starts
    assert latest(db).waves[0].state is planning.WaveState.BAKING
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=11)) == []         # 9 s of a 10 s bake
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=12)) == ["prod-1", "prod-2"]
    for name in ("prod-1", "prod-2"):
        report(db, name, put(db, V2[name])[0])
    controller.tick_blocking(T0 + dt.timedelta(seconds=13))
    controller.tick_blocking(T0 + dt.timedelta(seconds=23))
    assert latest(db).state is planning.RolloutState.DONE
    assert kinds(db)[-1] == "rollout_done"


def test_every_wave_a_rollout_releases_records_the_sealed_secret_versions_it_sends(
        controller: ctl.RolloutController, db: Database) -> None:
    first_commit(controller, db)
    _, recipient = sops.generate_identity()
    secret = sops.seal({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-password", "namespace":
                        "default", "labels": {bundles.LABEL_APP: "db"}}, "stringData": {"password": "hunter2"}},
                       [recipient])
    with_secret = {name: {**doc, "objects": [*doc["objects"], secret]} for name, doc in V2.items()}
    sync(controller, db, C2, with_secret)
    report(db, "canary-1", put(db, with_secret["canary-1"])[0])
    controller.tick_blocking(T0 + dt.timedelta(seconds=1))
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=12)) == ["prod-1", "prod-2", "same-1"]
    with db.session(write=False) as s:
        sent = {e.cluster: (e.details or {}).get("sealed") for e in store.events(s, limit=1000)
                if e.kind == "desired_changed" and e.commit == C2}
        messages = [e.message for e in store.events(s, limit=1000) if e.kind == "desired_changed" and e.commit == C2]
    version = {"Secret/default/db-password": sops.ciphertext_digest(secret)}
    assert sent == {"canary-1": version, "prod-1": version, "prod-2": version, "same-1": version}, sent
    assert all("sealed secrets Secret/default/db-password sha256:" in m for m in messages), messages
    assert "hunter2" not in str(sent) + str(messages)


def test_failed_canary_rolls_back_and_later_waves_never_move(controller: ctl.RolloutController, db: Database) -> None:
    before = first_commit(controller, db)
    sync(controller, db, C2, V2)
    report(db, "canary-1", put(db, V2["canary-1"])[0], phase="Degraded")
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=1)) == ["canary-1"]
    rollout = latest(db)
    assert rollout.state is planning.RolloutState.ROLLED_BACK and rollout.failing == ("canary-1",)
    assert desired(db) == before
    with db.session(write=False) as s:
        assert store.get_desired(s, "canary-1").commit == C1  # type: ignore[union-attr]
        last = store.events(s, limit=1)[0]
    assert last.kind == "rollout_rolled_back" and "canary-1" in last.message and last.details is not None
    assert last.details["failing"] == ["canary-1"]
    # The same commit rendered again (SyncNow) does not restart the rolled-back rollout.
    plan = sync(controller, db, C2, V2)
    assert plan.hold >= {"canary-1", "prod-1", "prod-2"} and desired(db) == before
    with db.session() as s:
        store.set_state(s, store.StateKey.LAST_DEPLOYED_COMMIT, C2)
        assert {n: p.state for n, p in controller.cluster_states(s).items()} == {
            "canary-1": "reverted", "prod-1": "held", "prod-2": "held"}
        store.set_state(s, store.StateKey.LAST_DEPLOYED_COMMIT, C3)  # the fleet moved on
        assert controller.cluster_states(s) == {}


def test_newer_commit_supersedes_and_unreleased_clusters_skip_to_the_newest(
        controller: ctl.RolloutController, db: Database) -> None:
    before = first_commit(controller, db)
    sync(controller, db, C2, V2)
    v3 = {name: bundle_doc(db="1", web="3") for name in LABELS}
    plan = sync(controller, db, C3, v3, now=T0 + dt.timedelta(seconds=5))
    with db.session(write=False) as s:
        rows = [store.get_rollout(s, seq) for seq in (1, 2)]
    assert [r.state for r in rows if r] == ["superseded", "progressing"]
    rollout = latest(db)
    assert rollout.commit == C3 and set(rollout.targets) == set(LABELS)
    assert rollout.previous["prod-1"] == before["prod-1"]                  # never saw the middle commit
    assert rollout.previous["canary-1"] == put(db, V2["canary-1"])[0]
    assert plan.changed == ["canary-1"] and desired(db)["canary-1"] == put(db, v3["canary-1"])[0]
    assert desired(db)["prod-1"] == before["prod-1"]                       # waits for its wave again
    assert "rollout_superseded" in kinds(db)


def test_pause_holds_and_promote_releases_the_next_wave(controller: ctl.RolloutController, db: Database) -> None:
    first_commit(controller, db)
    sync(controller, db, C2, V2)
    controller.control_blocking("pause", T0)
    report(db, "canary-1", put(db, V2["canary-1"])[0], now=T0 + dt.timedelta(minutes=5))
    assert controller.tick_blocking(T0 + dt.timedelta(minutes=5)) == []
    with pytest.raises(ctl.RolloutError, match="not progressing"):
        controller.control_blocking("pause", T0)
    controller.control_blocking("resume", T0 + dt.timedelta(minutes=5))
    rollout, changed = controller.control_blocking("promote", T0 + dt.timedelta(minutes=5))
    assert changed == ["prod-1", "prod-2"] and rollout.waves[0].state is planning.WaveState.DONE
    assert kinds(db)[-4:] == ["rollout_resumed", "wave_baking", "rollout_promoted", "wave_released"]


def test_a_restarted_controller_resumes_from_the_database(db: Database) -> None:
    first = ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: T0)
    first_commit(first, db)
    sync(first, db, C2, V2)
    report(db, "canary-1", put(db, V2["canary-1"])[0])
    first.tick_blocking(T0 + dt.timedelta(seconds=1))                           # baking since +1 s
    second = ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: T0 + dt.timedelta(seconds=3))
    report(db, "canary-1", put(db, V2["canary-1"])[0], now=T0 + dt.timedelta(seconds=4))  # the spoke's heartbeat
    assert second.tick_blocking(T0 + dt.timedelta(seconds=5)) == []
    assert second.tick_blocking(T0 + dt.timedelta(seconds=11)) == ["prod-1", "prod-2"]


@pytest.mark.parametrize("fresh_phase", ["Ready", "Degraded"])
def test_a_restarted_hub_judges_a_baking_wave_only_on_reports_received_since(db: Database, fresh_phase: str) -> None:
    first = ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: T0)
    before = first_commit(first, db)
    sync(first, db, C2, V2)
    target = put(db, V2["canary-1"])[0]
    report(db, "canary-1", target, now=T0)
    first.tick_blocking(T0 + dt.timedelta(seconds=1))                           # baking since +1 s
    # The hub is killed and stays down 5 minutes: past the 10 s bake and the 1 m progress deadline. Its
    # spoke reconnects at once; its last report (Ready) is from before the crash.
    restart = T0 + dt.timedelta(minutes=5)
    second = ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: restart)
    with db.session() as s:
        store.mark_connected(s, [("canary-1", restart)])
    for seconds in (1, 2):
        assert second.tick_blocking(restart + dt.timedelta(seconds=seconds)) == []
    rollout = latest(db)
    assert rollout.state is planning.RolloutState.PROGRESSING
    assert rollout.waves[0].state is planning.WaveState.BAKING
    assert rollout.waves[0].ready_since == T0 + dt.timedelta(seconds=1)
    assert desired(db)["prod-1"] == before["prod-1"]
    # The first report received since the restart decides, from the stored bake start.
    report(db, "canary-1", target, phase=fresh_phase, now=restart + dt.timedelta(seconds=3))
    changed = second.tick_blocking(restart + dt.timedelta(seconds=4))
    if fresh_phase == "Ready":
        assert changed == ["prod-1", "prod-2"]
    else:
        rollout = latest(db)
        assert rollout.state is planning.RolloutState.ROLLED_BACK and rollout.failing == ("canary-1",)
        assert desired(db)["prod-1"] == before["prod-1"]


def test_app_strategies_the_first_changed_app_in_dependency_order_decides(
        controller: ctl.RolloutController, db: Database) -> None:
    doc = dict(FLEET_DOC)
    del doc["rollout"]
    doc["apps"] = [{"name": "db", "path": "apps/db"},
                   {"name": "web", "path": "apps/web", "dependsOn": ["db"],
                    "rollout": {"waves": [{"name": "first", "selector": {"matchLabels": {"env": "prod"}}}]}}]
    fleet = model.parse_fleet(doc)
    first_commit(controller, db)
    db_only = {name: bundle_doc(db="2", web="1") for name in LABELS}
    plan = sync(controller, db, C2, db_only, fleet=fleet)
    assert plan.start is None and desired(db)["canary-1"] == put(db, db_only["canary-1"])[0]  # no strategy: at once
    both = {name: bundle_doc(db="3", web="2") for name in LABELS}
    plan = sync(controller, db, C3, both, fleet=fleet)
    assert plan.start is not None
    assert [w.name for w in latest(db).waves] == ["first", "rest"]


def test_pins_hold_a_cluster_and_rollouts_skip_it(controller: ctl.RolloutController, db: Database) -> None:
    before = first_commit(controller, db)
    sync(controller, db, C2, V2)
    with pytest.raises(ctl.RolloutError, match="never desired"):
        controller.pin_blocking(["prod-1"], "sha256:" + "0" * 64)
    with pytest.raises(ctl.RolloutError, match="no bundle of commit 4444444"):
        controller.pin_blocking(["prod-1"], "4444444")
    names, digest = controller.pin_blocking(["canary-1"], C1[:8])
    assert names == ["canary-1"] and digest == before["canary-1"] and desired(db)["canary-1"] == digest
    # A pinned canary does not get the rollout's bundle, and proves nothing: the rollout stops there.
    controller.tick_blocking(T0 + dt.timedelta(seconds=1))
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=12)) == []
    assert desired(db) == before
    rollout = latest(db)
    assert rollout.state is planning.RolloutState.FAILED and rollout.failing == ("canary-1",)
    assert "wave canary has no present cluster" in rollout.reason and "canary-1 (pinned)" in rollout.reason
    with db.session(write=False) as s:
        assert controller.cluster_states(s)["prod-1"] == ctl.ClusterRollout(wave="rest", state="held")
    view = controller.view_blocking()
    assert view is not None and view.absent == {"canary-1": planning.Absence.PINNED}
    # The operator decides: promote skips the canary wave, and the pinned canary is still left alone.
    controller.control_blocking("resume", T0 + dt.timedelta(seconds=13))
    _, changed = controller.control_blocking("promote", T0 + dt.timedelta(seconds=13))
    assert changed == ["prod-1", "prod-2"] and desired(db)["canary-1"] == before["canary-1"]
    v3 = {name: bundle_doc(db="1", web="3") for name in LABELS}
    assert "canary-1" in sync(controller, db, C3, v3).hold and desired(db)["canary-1"] == before["canary-1"]
    controller.pin_blocking(["canary-1"], "")
    with db.session(write=False) as s:
        assert store.get_cluster(s, "canary-1").pinned_digest is None  # type: ignore[union-attr]


def test_a_canary_pinned_before_the_commit_stops_the_rollout_instead_of_vanishing(
        controller: ctl.RolloutController, db: Database) -> None:
    before = first_commit(controller, db)
    controller.pin_blocking(["canary-1"], C1[:8])
    plan = sync(controller, db, C2, V2)
    rollout = latest(db)
    assert [(w.name, w.clusters) for w in rollout.waves] == [("canary", ("canary-1",)),
                                                           ("rest", ("prod-1", "prod-2"))]
    assert plan.changed == [] and desired(db) == before              # the pinned canary is not moved
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=1)) == []
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=12)) == []
    assert desired(db) == before                                      # and the rest of prod is not either
    assert "canary-1 (pinned)" in latest(db).reason
    # Unpinned during the rollout: the canary takes the rollout's bundle, as a released cluster may.
    controller.control_blocking("resume", T0 + dt.timedelta(seconds=13))
    controller.pin_blocking(["canary-1"], "")
    target = put(db, V2["canary-1"])[0]
    plan = sync(controller, db, C2, {"canary-1": V2["canary-1"]}, full=False)
    assert "canary-1" not in plan.hold and desired(db)["canary-1"] == target


def test_a_deregistered_canary_stops_the_rollout_instead_of_passing_it(
        controller: ctl.RolloutController, db: Database) -> None:
    before = first_commit(controller, db)
    sync(controller, db, C2, V2)
    with db.session() as s:
        store.remove_cluster(s, "canary-1", now=T0)
    controller.tick_blocking(T0 + dt.timedelta(seconds=1))
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=12)) == []
    assert desired(db)["prod-1"] == before["prod-1"] and "canary-1" not in desired(db)
    rollout = latest(db)
    assert rollout.state is planning.RolloutState.FAILED and "canary-1 (deregistered)" in rollout.reason
    with db.session(write=False) as s:
        last = store.events(s, limit=1)[0]
    assert last.kind == "rollout_failed" and "canary-1 (deregistered)" in last.message
    assert last.details is not None and last.details["failing"] == ["canary-1"]


def test_a_canary_no_spoke_ever_registered_is_not_evidence(controller: ctl.RolloutController, db: Database) -> None:
    doc = dict(FLEET_DOC)
    doc["rollout"] = {**FLEET_DOC["rollout"], "waves": [{"name": "canary", "selector": {"matchLabels": {"ring": "0"}}}]}
    fleet = model.parse_fleet(doc)
    declared = {"git-only-1": {"ring": "0"}}
    before = desired(db)
    sync(controller, db, C1, {**V1, "git-only-1": bundle_doc(db="1", web="1")}, fleet=fleet, labels=declared)
    before = desired(db)
    sync(controller, db, C2, {**V2, "git-only-1": bundle_doc(db="1", web="2")}, fleet=fleet, labels=declared)
    assert latest(db).waves[0].clusters == ("git-only-1",)
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=12)) == []
    rollout = latest(db)
    assert rollout.state is planning.RolloutState.FAILED and "git-only-1 (not registered)" in rollout.reason
    assert all(desired(db)[n] == before[n] for n in LABELS)


def test_an_offline_canary_holds_the_next_wave_until_it_is_back(
        controller: ctl.RolloutController, db: Database) -> None:
    before = first_commit(controller, db)
    sync(controller, db, C2, V2)
    target = put(db, V2["canary-1"])[0]
    with db.session() as s:
        store.mark_connected(s, [("canary-1", T0)])
        assert store.mark_disconnected(s, "canary-1", opened_at=T0, now=T0 + dt.timedelta(seconds=1))
    # Its last report said Ready at the new bundle, but it is gone: that is not evidence.
    report(db, "canary-1", target, now=T0 + dt.timedelta(seconds=1))
    for seconds in (2, 12, 30):
        assert controller.tick_blocking(T0 + dt.timedelta(seconds=seconds)) == []
    rollout = latest(db)
    assert (rollout.state is planning.RolloutState.PROGRESSING
            and rollout.waves[0].state is planning.WaveState.PROGRESSING)
    assert desired(db)["prod-1"] == before["prod-1"]
    view = controller.view_blocking()
    assert view is not None and view.absent == {"canary-1": planning.Absence.OFFLINE}
    # Back within the progress deadline (1m): the wave bakes and the next one goes.
    with db.session() as s:
        store.mark_connected(s, [("canary-1", T0 + dt.timedelta(seconds=40))])
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=41)) == []
    assert latest(db).waves[0].state is planning.WaveState.BAKING
    assert controller.tick_blocking(T0 + dt.timedelta(seconds=51)) == ["prod-1", "prod-2"]


def test_a_restarted_hub_gives_offline_spokes_time_to_reconnect_before_judging(db: Database) -> None:
    first = ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: T0)
    first_commit(first, db)
    sync(first, db, C2, V2)
    report(db, "canary-1", put(db, V2["canary-1"])[0], now=T0)
    first.tick_blocking(T0 + dt.timedelta(seconds=1))
    # Down 5 minutes: past the progress deadline, and the canary's last-seen is 5 minutes old.
    restart = T0 + dt.timedelta(minutes=5)
    second = ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: restart)
    grace = presence.silent_after(second.heartbeat_seconds)
    assert second.tick_blocking(restart + grace - dt.timedelta(seconds=1)) == []
    assert latest(db).state is planning.RolloutState.PROGRESSING  # not stopped for an absence the hub caused
    assert second.tick_blocking(restart + grace + dt.timedelta(seconds=1)) == []
    rollout = latest(db)
    assert rollout.state is planning.RolloutState.FAILED and "canary-1 (offline)" in rollout.reason


def test_a_canary_silent_past_the_heartbeat_grace_is_offline(controller: ctl.RolloutController, db: Database) -> None:
    first_commit(controller, db)
    sync(controller, db, C2, V2)
    report(db, "canary-1", put(db, V2["canary-1"])[0], now=T0)
    # No disconnect was seen (the hub that had its stream died), but nobody refreshed last-seen either.
    late = T0 + presence.silent_after(controller.heartbeat_seconds) + dt.timedelta(seconds=1)
    assert late - T0 > dt.timedelta(minutes=1)                  # past the canary's progress deadline as well
    assert controller.tick_blocking(late) == []
    rollout = latest(db)
    assert rollout.state is planning.RolloutState.FAILED and "canary-1 (offline)" in rollout.reason


def test_a_stream_reopened_before_the_old_one_ended_stays_connected(db: Database) -> None:
    def row() -> Any:
        with db.session(write=False) as s:
            return store.get_cluster(s, "prod-1")

    with db.session() as s:
        store.mark_connected(s, [("prod-1", T0)])
        store.mark_connected(s, [("prod-1", T0 + dt.timedelta(seconds=5))])   # reconnected (other hub, say)
        assert not store.mark_disconnected(s, "prod-1", opened_at=T0, now=T0 + dt.timedelta(seconds=6))
    assert row().disconnected_at is None
    with db.session() as s:
        assert store.mark_disconnected(s, "prod-1", opened_at=T0 + dt.timedelta(seconds=5),
                                       now=T0 + dt.timedelta(seconds=7))
    assert row().disconnected_at == row().last_seen == T0 + dt.timedelta(seconds=7)


GATED_DOC: dict[str, Any] = {**FLEET_DOC, "rollout": {
    **FLEET_DOC["rollout"], "bakeTime": "0s",
    "waves": [{"name": "canary", "selector": {"matchLabels": {"canary": "true"}}},
              {"name": "prod", "selector": {"matchLabels": {"env": "prod"}},
               "approval": {"required": True, "paths": ["apps/web/**"], "approvers": ["alice"]}}]}}


@pytest.mark.parametrize(("changed", "gated"), [(["apps/web/deploy.yaml"], True), (["apps/db/x.yaml"], False),
                                                (None, True)])
def test_path_bound_approval_is_decided_once_from_the_changed_paths_and_kept_across_a_restart(
        db: Database, changed: list[str] | None, gated: bool) -> None:
    first = ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: T0)
    asked: list[tuple[str, str]] = []

    def changed_paths(old: str, new: str) -> list[str]:
        asked.append((old, new))
        if changed is None:
            raise RuntimeError(f"{old} is gone from the mirror")
        return changed
    first.changed_paths = changed_paths
    first_commit(first, db)
    sync(first, db, C2, V2, fleet=model.parse_fleet(GATED_DOC))
    assert asked == [(C1, C2)]                               # one previous commit: one diff
    report(db, "canary-1", put(db, V2["canary-1"])[0])
    released = first.tick_blocking(T0 + dt.timedelta(seconds=1))
    if not gated:
        assert released == ["prod-1", "prod-2"]
        return
    assert released == [] and latest(db).waves[1].state is planning.WaveState.WAITING_APPROVAL
    assert first.tick_blocking(T0 + dt.timedelta(hours=2)) == []     # no timer passes the gate
    # Another hub process (a restart, a new leader) finds the gate in the database, closed.
    second = ctl.RolloutController(db=db, notifier=notify.Notifier(), clock=lambda: T0 + dt.timedelta(hours=3))
    assert second.tick_blocking(T0 + dt.timedelta(hours=3)) == []
    with pytest.raises(planning.ApprovalDenied, match="approvers: alice"):
        second.approve_blocking(by="admin", comment="no")
    rollout, changed_now = second.approve_blocking(by="alice", comment="ok", now=T0 + dt.timedelta(hours=3))
    assert changed_now == ["prod-1", "prod-2"] and rollout.waves[1].approved_by == "alice"
    with db.session(write=False) as s:
        approved = [e for e in store.events(s, limit=1000) if e.kind == "approved"]
    assert [(e.message, (e.details or {})["by"], (e.details or {})["comment"]) for e in approved] == [
        (f"wave prod of rollout {rollout.id} approved by alice: ok", "alice", "ok")]
