"""Drift at the hub's edge (issue 12 items 1 and 2), on a real hub (TLS, port 0, real Git, SQLite and
PostgreSQL): a report's drift replaces the stored drift set, each drift event becomes one history event
naming the object, the fields, the field manager and the action, and hostile drift fields are refused."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from grpc import aio

from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    admin_of,
    channel,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)

REF = pb.ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web")
REPLICAS = pb.FieldDrift(path=".spec.replicas", desired="3", live="7")


def _event(action: str, managers: tuple[str, ...] = ("kubectl",)) -> pb.DriftEvent:
    return pb.DriftEvent(ref=REF, app="web", action=action, kind_of_drift="modified", fields=[REPLICAS],
                         managers=list(managers))


async def test_drift_is_replaced_per_report_and_each_event_is_history(tmp_path: Path, fleet_repo: FleetRepo,
                                                                      database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        desired = await next_desired(spoke.watch())
        admin = admin_of(hub, ch)
        base = {"applied_commit": desired.commit, "applied_digest": desired.digest}
        reported = pb.DriftItem(ref=REF, app="web", kind_of_drift="modified", fields=[REPLICAS], managers=["hand"])
        await spoke.report(phase=pb.PHASE_DRIFTED, drift=[reported], drift_events=[_event("reported")], **base)
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.summary.drift_count == 1 and list(detail.drift[0].managers) == ["hand"]
        # The next report's drift set replaces it: corrected (and an old spoke's `corrected` item) is no drift.
        old_style = pb.DriftItem(ref=REF, app="web", kind_of_drift="modified", fields=[REPLICAS], corrected=True)
        await spoke.report(phase=pb.PHASE_READY, drift=[old_style],
                           drift_events=[_event("detected"), _event("corrected")], **base)
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.summary.drift_count == 0 and not detail.drift
        listed = await admin.call("ListClusters", pb.ListClustersRequest())
        assert [c.drift_count for c in listed.clusters] == [0]

        history = await admin.call("History", pb.HistoryRequest(cluster="alpha", limit=100))
        drift = [(e.kind, e.message, json.loads(e.details_json)) for e in history.events if e.kind.startswith("drift")]
        assert [(kind, details["action"]) for kind, _, details in drift] == [
            ("drift", "reported"), ("drift", "detected"), ("drift_corrected", "corrected")]
        for _, message, details in drift:
            assert "Deployment.apps/shop/web" in message and ".spec.replicas desired 3, live 7" in message
            assert "changed by kubectl" in message
            assert details["object"] == "Deployment.apps/shop/web" and details["managers"] == ["kubectl"]
        assert drift[2][1] == ("cluster alpha: drift corrected on Deployment.apps/shop/web: .spec.replicas "
                               "desired 3, live 7; changed by kubectl")
        assert not any("object(s) drifted" in e.message for e in history.events)

        # Hostile or broken drift fields are refused, naming the cluster and the object.
        for bad, expect in (
                ({"drift_events": [_event("ignored-it")]}, "unknown action"),
                ({"drift_events": [_event("corrected")] * 1001}, "1001 drift events"),
                ({"drift_events": [_event("corrected", managers=("m" * 129,))]}, "field manager"),
                ({"drift": [pb.DriftItem(ref=REF, managers=[str(i) for i in range(33)])]}, "33 field managers")):
            with pytest.raises(aio.AioRpcError) as caught:
                await spoke.report(phase=pb.PHASE_READY, **base, **bad)  # type: ignore[arg-type]
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "cluster alpha" in (caught.value.details() or "") and expect in (caught.value.details() or "")
