"""Replica heartbeat records and handed-over sync outcomes (issue 20): what a follower reads back is what
the leader stored, and a replica is gone after three missed heartbeats or a clean stop."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from hub.commands import hubserve
from hub.service import SyncOutcome
from hub.store import replicas

T0 = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def _record(**changes: object) -> replicas.ReplicaRecord:
    base = replicas.ReplicaRecord(replica="hub-1-7-abc (10.0.0.1:7443)", name="hub-1-7-abc", address="10.0.0.1:7443",
                                  started=T0, heartbeat=T0, interval=5.0, streams=3)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_replica_is_gone_after_three_missed_heartbeats_or_once_stopped() -> None:
    record = _record()
    assert not record.gone(T0 + dt.timedelta(seconds=15))
    assert record.gone(T0 + dt.timedelta(seconds=15.5))
    assert _record(stopped=True).gone(T0)
    assert replicas.ReplicaRecord.from_json(record.to_json()) == record


def test_a_handed_over_sync_outcome_reads_back_with_every_kind_of_cluster() -> None:
    outcome = SyncOutcome(commit="a" * 40, changed=("eu-1",), render_errors={"us-9": ("cluster us-9: bad overlay",)},
                          desired=("eu-1",), held=("eu-2", "eu-3"), pinned=("eu-4",), unchanged=7, again=True)
    stored = json.loads(json.dumps(hubserve._outcome_to_doc(outcome)))  # through the database as JSON
    back = hubserve._outcome_from_doc(stored)
    assert back == outcome
    assert back.report == outcome.report
    refused = SyncOutcome(commit="b" * 40, refused="history rewrite: not a descendant of the deployed commit")
    assert hubserve._outcome_from_doc(json.loads(json.dumps(hubserve._outcome_to_doc(refused)))).failed
