"""apply_one's decisions, with a stand-in for the cluster port (the real one is exercised in integration)."""

from __future__ import annotations

import copy
from typing import Any

from protos import bundle as bundles
from protos.objects import ObjectRef
from protos.status import Action
from spoke.apply import applying
from spoke.cluster import errors
from spoke.inventory import manifest_hash

OPTIONS = applying.ApplyOptions(cluster="c1")
IMMUTABLE = 'Deployment.apps "web" is invalid: spec.selector: Invalid value: {"app":"v2"}: field is immutable'


class FakeCluster:
    """Just enough of ClusterClient: objects by ref, with an immutable selector like a real API server."""

    def __init__(self) -> None:
        self.objects: dict[ObjectRef, dict[str, Any]] = {}
        self.writes: list[str] = []
        self.rv = 0

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        out = copy.deepcopy(obj)
        out["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[ObjectRef.of(obj)] = out
        return out

    def apply_status(self, obj: dict[str, Any], *, manager: str, force: bool = True,
                     dry_run: bool = False) -> tuple[bool, dict[str, Any]]:
        ref = ObjectRef.of(obj)
        self.writes.append(f"apply {ref}")
        live = self.objects.get(ref)
        if live is not None and live.get("spec", {}).get("selector") != obj.get("spec", {}).get("selector"):
            raise errors.api_error(ref, status=422, reason="Invalid", message=IMMUTABLE)
        return live is None, self._store(obj)

    def apply(self, obj: dict[str, Any], *, manager: str, force: bool = True) -> dict[str, Any]:
        return self.apply_status(obj, manager=manager, force=force)[1]

    def delete(self, api_version: str, kind: str, namespace: str, name: str, *, propagation: str = "") -> bool:
        ref = ObjectRef(api_version.rpartition("/")[0], kind, namespace, name)
        self.writes.append(f"delete {ref}")
        return self.objects.pop(ref, None) is not None

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(ObjectRef(api_version.rpartition("/")[0], kind, namespace, name))


def _deployment(selector: str, *, force: bool = False) -> dict[str, Any]:
    annotations = {bundles.ANNOTATION_FORCE: "true"} if force else {}
    return applying.stamp({"apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
                                "spec": {"selector": {"matchLabels": {"app": selector}}}}, cluster="c1")


def _apply(cluster: FakeCluster, obj: dict[str, Any]) -> applying.Applied:
    return applying.apply_one(cluster, obj, live=cluster.get("apps/v1", "Deployment", "shop", "web"),  # type: ignore[arg-type]
                              manifest_hash=manifest_hash(obj), previous_hash=None, options=OPTIONS)


def test_immutable_change_without_force_fails_with_the_api_message_and_a_hint() -> None:
    cluster = FakeCluster()
    assert _apply(cluster, _deployment("v1")).entry.action == Action.CREATED
    result = _apply(cluster, _deployment("v2"))
    assert result.entry.action == Action.FAILED
    assert "field is immutable" in result.entry.message
    assert f'{bundles.ANNOTATION_FORCE}: "true"' in result.entry.message
    assert cluster.writes[-1] == "apply Deployment.apps/shop/web"  # nothing deleted


def test_immutable_change_with_force_deletes_and_recreates() -> None:
    cluster = FakeCluster()
    _apply(cluster, _deployment("v1"))
    result = _apply(cluster, _deployment("v2", force=True))
    assert result.entry.action == Action.CREATED and "recreated" in result.entry.message
    assert cluster.writes[-3:] == ["apply Deployment.apps/shop/web", "delete Deployment.apps/shop/web",
                                   "apply Deployment.apps/shop/web"]
    live = cluster.get("apps/v1", "Deployment", "shop", "web")
    assert live is not None and live["spec"]["selector"] == {"matchLabels": {"app": "v2"}}


def test_other_api_errors_fail_only_that_object() -> None:
    class Refusing(FakeCluster):
        def apply_status(self, obj: dict[str, Any], **_: Any) -> tuple[bool, dict[str, Any]]:
            raise errors.api_error(ObjectRef.of(obj), status=403, reason="Forbidden", message="no RBAC for you")

    result = _apply(Refusing(), _deployment("v1"))
    assert result.entry.action == Action.FAILED and "no RBAC for you" in result.entry.message
