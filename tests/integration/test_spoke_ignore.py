"""ignoreDifferences against kubesim's real server-side apply ownership (issue 21 part 2).

An ignored field another manager writes stays as it wrote it: not drift, not applied over, and not
owned by Convoy afterwards. A field only Convoy owned when the rule arrived is not deleted (its sole
owner leaving it out of an apply would delete it): it keeps its live value until another manager
takes it over.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from protos.status import Action, DriftPolicy
from spoke import drift, drift_policy, inventory
from spoke.apply import applying, engine
from spoke.cluster import ClusterClient
from tests.integration.spoke_harness import deployment, make_bundle, namespace

CLUSTER = "edge-1"
REPLICAS = {"group": "apps", "kind": "Deployment", "name": "web", "jsonPointers": ["/spec/replicas"]}


@pytest.fixture
def client(kubesim_server: Any, kube_cluster: str) -> Iterator[ClusterClient]:
    c = ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster))
    yield c
    c.close()


def _bundle(ns: str, *, replicas: int = 2, rev: str = "1", ignore: bool = True) -> dict[str, Any]:
    apps = [{"name": "web", "namespace": ns, "dependsOn": [], "driftPolicy": None,
             **({"ignoreDifferences": [REPLICAS]} if ignore else {})}]
    return make_bundle([namespace(ns), deployment("web", ns, replicas=replicas, annotations={"rev": rev})],
                       apps=apps)


def _apply(client: ClusterClient, bundle: dict[str, Any],
           previous: inventory.Inventory | None) -> tuple[engine.ApplyResult, inventory.Inventory]:
    result = engine.apply_bundle(client, bundle, previous=previous, options=engine.EngineOptions(cluster=CLUSTER))
    assert not result.errors, result.errors
    return result, inventory.Inventory(entries={e.ref: e for e in result.inventory})


def _scale(client: ClusterClient, ns: str, replicas: int, manager: str = "hpa-controller") -> None:
    def mutate(live: dict[str, Any] | None) -> dict[str, Any]:
        assert live is not None
        live["spec"]["replicas"] = replicas
        return live

    client.update_with("apps/v1", "Deployment", ns, "web", mutate, manager=manager)


def _live(client: ClusterClient, ns: str) -> dict[str, Any]:
    live = client.get("apps/v1", "Deployment", ns, "web")
    assert live is not None
    return live


def _convoy_owns_replicas(live: dict[str, Any]) -> bool:
    owned = drift.managed_paths(live["metadata"].get("managedFields"), manager=applying.MANAGER)
    return ".spec.replicas" in owned.paths()


def _judge(client: ClusterClient, result: engine.ApplyResult, ns: str) -> drift_policy.Outcome:
    d = next(d for d in result.desired.values() if d.ref.kind == "Deployment")
    return drift_policy.enforce(client, d, _live(client, ns), known=None, entry=None, policy=DriftPolicy.CORRECT,
                                paused=False, cluster=CLUSTER)


def test_a_field_another_manager_scales_is_neither_drift_nor_taken_back(client: ClusterClient) -> None:
    ns = "ign-scale"
    result, inv = _apply(client, _bundle(ns), None)
    assert _live(client, ns)["spec"]["replicas"] == 2  # created with the Git value
    _scale(client, ns, 5)
    # Not drift: nothing reported, nothing corrected.
    outcome = _judge(client, result, ns)
    assert outcome.drift is None and outcome.events == () and _live(client, ns)["spec"]["replicas"] == 5
    # The same bundle again: the object counts as unchanged.
    again, inv = _apply(client, _bundle(ns), inv)
    assert {str(e.ref): e.action for e in again.changeset}[f"Deployment.apps/{ns}/web"] == Action.UNCHANGED
    # A Git change to the same Deployment is applied; replicas stay as the other manager set them,
    # and Convoy does not own them.
    changed, _ = _apply(client, _bundle(ns, rev="2"), inv)
    assert {str(e.ref): e.action for e in changed.changeset}[f"Deployment.apps/{ns}/web"] == Action.CONFIGURED
    live = _live(client, ns)
    assert live["metadata"]["annotations"]["rev"] == "2" and live["spec"]["replicas"] == 5
    assert not _convoy_owns_replicas(live)


def test_a_field_only_convoy_owned_keeps_its_live_value_until_another_manager_takes_it(
        client: ClusterClient) -> None:
    ns = "ign-sole"
    _, inv = _apply(client, _bundle(ns, replicas=3, ignore=False), None)
    assert _convoy_owns_replicas(_live(client, ns))
    # The rule arrives with a Git change that also says 2 replicas: the live 3 stays (not deleted, not 2).
    result, inv = _apply(client, _bundle(ns, replicas=2, rev="2"), inv)
    live = _live(client, ns)
    assert live["spec"]["replicas"] == 3 and live["metadata"]["annotations"]["rev"] == "2"
    assert _judge(client, result, ns).drift is None
    # Another manager takes it over; the next Git change neither reverts nor re-owns it.
    _scale(client, ns, 6)
    _apply(client, _bundle(ns, replicas=2, rev="3"), inv)
    live = _live(client, ns)
    assert live["spec"]["replicas"] == 6 and live["metadata"]["annotations"]["rev"] == "3"
    assert not _convoy_owns_replicas(live)


def test_without_the_rule_the_field_is_drift_again_and_corrected(client: ClusterClient) -> None:
    ns = "ign-off"
    _, inv = _apply(client, _bundle(ns), None)
    _scale(client, ns, 4)
    result, _ = _apply(client, _bundle(ns, ignore=False), inv)
    assert _live(client, ns)["spec"]["replicas"] == 2  # the rule gone, Git's value is applied again
    _scale(client, ns, 7)
    outcome = _judge(client, result, ns)
    assert outcome.drift is None and [e.action for e in outcome.events] == ["detected", "corrected"]
    assert _live(client, ns)["spec"]["replicas"] == 2
