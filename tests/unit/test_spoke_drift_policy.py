"""Drift policy: per-app overrides, stale events, and the verdicts that need no write to the cluster."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from protos.objects import ObjectRef
from protos.status import Action, DriftAction, DriftPolicy
from spoke import drift, drift_policy, report
from spoke.apply import engine
from spoke.apply.changeset import ChangeSetEntry
from spoke.cluster import ClusterClient

REF = ObjectRef("", "ConfigMap", "shop", "conf")
MANIFEST = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "shop"},
            "data": {"color": "blue"}}
DESIRED = engine.Desired(ref=REF, api_version="v1", app="shop", manifest=MANIFEST, hash="h")


class NoWrites:
    """A cluster client for verdicts that must not touch the cluster: any call fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"drift policy called the cluster ({name}) for a verdict that needs no write")


CLIENT = cast(ClusterClient, NoWrites())


def _live(color: str) -> dict[str, Any]:
    fields = {"f:data": {"f:color": {}}}
    return MANIFEST | {"data": {"color": color}, "metadata": MANIFEST["metadata"] | {
        "resourceVersion": "7",
        "managedFields": [{"manager": "convoy", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields}]}}


def _record(fields: tuple[drift.FieldDiff, ...]) -> report.DriftRecord:
    return report.DriftRecord(REF, "shop", "modified", fields, dt.datetime.now(dt.UTC))


def _enforce(live: dict[str, Any] | None, **given: Any) -> drift_policy.Outcome:
    args: dict[str, Any] = {"known": None, "entry": None, "policy": DriftPolicy.REPORT, "paused": False,
                            "cluster": "c1"} | given
    return drift_policy.enforce(CLIENT, DESIRED, live, **args)


def test_per_app_policies_and_an_unknown_value_reported() -> None:
    found, problems = drift_policy.policies({"apps": [{"name": "a", "driftPolicy": "report"}, {"name": "b"},
                                                      {"name": "c", "driftPolicy": "ignore"}]})
    assert found == {"a": DriftPolicy.REPORT}
    assert problems == ["app c: driftPolicy 'ignore' is not one of correct, report; using the spoke's default"]


def test_an_event_older_than_the_copy_held_is_stale() -> None:
    def rv(version: str) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": version}}

    assert drift_policy.is_stale(rv("5"), rv("9"))
    assert not drift_policy.is_stale(rv("9"), rv("5"))
    assert not drift_policy.is_stale(rv("5"), None)
    assert not drift_policy.is_stale(rv("abc"), rv("9"))  # opaque versions: never skipped


def test_a_change_under_the_report_policy_is_reported_once() -> None:
    first = _enforce(_live("red"))
    assert first.drift is not None and [f.path for f in first.drift.fields] == [".data.color"]
    assert [e.action for e in first.events] == [DriftAction.REPORTED]
    again = _enforce(_live("red"), known=first.drift)
    assert again == drift_policy.Outcome(first.drift)  # the same change seen again is no news


def test_paused_reports_even_under_the_correct_policy() -> None:
    outcome = _enforce(_live("red"), policy=DriftPolicy.CORRECT, paused=True)
    assert [e.action for e in outcome.events] == [DriftAction.REPORTED]


def test_put_back_by_hand_is_reverted_and_leaves_the_drift_set() -> None:
    known = _record((drift.FieldDiff(".data.color", '"blue"', '"red"'),))
    outcome = _enforce(_live("blue"), known=known)
    assert outcome.drift is None
    assert [(e.action, e.fields) for e in outcome.events] == [(DriftAction.REVERTED, known.fields)]


def test_objects_not_enforced_are_left_alone() -> None:
    for action in (Action.FAILED, Action.WAITING):
        entry = ChangeSetEntry(REF, action, "why", "shop")
        assert _enforce(None, entry=entry, policy=DriftPolicy.CORRECT) == drift_policy.Outcome(None)
    ignored = engine.Desired(ref=REF, api_version="v1", app="shop", hash="h", manifest=MANIFEST | {
        "metadata": MANIFEST["metadata"] | {"annotations": {"convoy.dev/ssa": "Ignore"}}})
    assert drift_policy.enforce(CLIENT, ignored, None, known=None, entry=None, policy=DriftPolicy.CORRECT,
                                paused=False, cluster="c1") == drift_policy.Outcome(None)
