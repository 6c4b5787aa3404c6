"""The cluster's phase and per-object status, from what the agent knows (pure)."""

from __future__ import annotations

from typing import Any

from protos.objects import ObjectRef
from protos.status import Action, HealthStatus, Phase
from spoke import phase, report
from spoke.apply.changeset import ChangeSetEntry

WEB = ObjectRef("apps", "Deployment", "shop", "web")
CONF = ObjectRef("", "ConfigMap", "shop", "conf")
OLD = ObjectRef("", "ConfigMap", "shop", "old")


def _deployment(ready: bool) -> dict[str, Any]:
    status = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
              "readyReplicas": 1 if ready else 0, "availableReplicas": 1 if ready else 0,
              "conditions": [{"type": "Available", "status": "True" if ready else "False"}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop",
                                                                        "generation": 1},
            "spec": {"replicas": 1}, "status": status}


CONF_LIVE = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "shop"}}


def _status(*, web_ready: bool = True, web_action: Action = Action.CONFIGURED, message: str = "",
            live: bool = True, **facts: Any) -> tuple[Phase, str]:
    desired = {WEB: "shop", CONF: "shop"}
    actions = {WEB: ChangeSetEntry(WEB, web_action, message, "shop"), CONF: ChangeSetEntry(CONF, Action.UNCHANGED)}
    seen: dict[ObjectRef, dict[str, Any]] = {CONF: CONF_LIVE}
    if live:
        seen[WEB] = _deployment(web_ready)
    objects = phase.object_statuses(desired=desired, actions=actions, live=seen)
    given: dict[str, Any] = {"has_bundle": True, "refused": "", "paused": False, "errors": [], "drifted": False,
                             "timed_out": False} | facts
    return phase.phase_of(objects, desired=desired, **given)


def test_every_object_current_is_ready() -> None:
    assert _status() == (Phase.READY, "")


def test_not_current_is_progressing_until_the_health_timeout_then_degraded_naming_the_object() -> None:
    assert _status(web_ready=False)[0] == Phase.PROGRESSING
    current, message = _status(web_ready=False, timed_out=True)
    assert current == Phase.DEGRADED and message.startswith("Deployment.apps/shop/web: InProgress")


def test_an_object_waiting_for_its_dependencies_counts_as_not_current_and_a_skipped_one_does_not() -> None:
    waiting = _status(web_action=Action.WAITING, message="waiting for db: Deployment.apps/data/pg is InProgress",
                      live=False, timed_out=True)
    assert waiting == (Phase.DEGRADED, "Deployment.apps/shop/web: Unknown waiting for db: "
                                       "Deployment.apps/data/pg is InProgress")
    assert _status(web_action=Action.SKIPPED, message="convoy.dev/ssa: Ignore", live=False, timed_out=True) == (
        Phase.READY, "")


def test_errors_and_failed_objects_make_it_failed_with_the_first_error() -> None:
    assert _status(errors=["bundle sha256:1: boom", "second"]) == (Phase.FAILED, "bundle sha256:1: boom")
    assert _status(web_action=Action.FAILED, message="denied")[0] == Phase.FAILED


def test_without_a_bundle_it_is_unknown_paused_or_refused() -> None:
    def bare(**facts: Any) -> tuple[Phase, str]:
        given: dict[str, Any] = {"has_bundle": False, "refused": "", "paused": False, "errors": [],
                                 "drifted": False, "timed_out": False} | facts
        return phase.phase_of([], desired=[], **given)

    assert bare() == (Phase.UNKNOWN, "")
    assert bare(paused=True) == (Phase.PAUSED, "")
    assert bare(refused="bundle sha256:1 refused: bad signature") == (
        Phase.FAILED, "bundle sha256:1 refused: bad signature")


def test_drift_and_pause_show_as_the_worst_phase_that_applies() -> None:
    assert _status(drifted=True)[0] == Phase.DRIFTED
    assert _status(paused=True)[0] == Phase.PAUSED
    assert _status(drifted=True, web_ready=False, timed_out=True)[0] == Phase.DEGRADED


def test_objects_no_longer_desired_are_listed_after_the_desired_ones() -> None:
    objects = phase.object_statuses(desired={WEB: "shop"},
                                    actions={OLD: ChangeSetEntry(OLD, Action.PRUNED, "", "shop")},
                                    live={WEB: _deployment(True)})
    assert objects == [
        report.ObjectStatus(ref=WEB, app="shop", action=None, health=HealthStatus.CURRENT,
                            reason=objects[0].reason),
        report.ObjectStatus(ref=OLD, app="shop", action=Action.PRUNED, health=HealthStatus.UNKNOWN),
    ]
