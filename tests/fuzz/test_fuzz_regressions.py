"""Every crash the fuzz targets found (or that writing them showed), as the error a user now gets.

Each input is also a ``regression-*`` seed under ``corpus/``, so every fuzz run replays it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from hub.api import limits
from hub.fleet import clusters, model
from hub.render import kustomize
from hub.tree.errors import KustomizeError
from protos import bundle
from protos.codec import pb
from spoke import inventory
from tests.fuzz._support import MemoryFS

FLEET = "apiVersion: convoy.dev/v1alpha1\nkind: Fleet\n"


@pytest.mark.parametrize("layer", ["clusters/{{cluster}", "clusters/{cluster}{", "clusters/{cluster}}/x",
                                   # Found by fuzz_fleet in the first version of the fix (a KeyError from format):
                                   "clusters/{cluOster}/{app}"])
def test_cluster_layer_with_a_lone_brace_is_a_fleet_error(layer: str) -> None:
    # Was: ValueError "Single '}' encountered in format string" out of load_fleet.
    fleet = FLEET + f"apps:\n- {{name: web, path: apps/web, targets: {{}}, clusterLayer: '{layer}'}}\n"
    with pytest.raises(model.FleetConfigError) as caught:
        model.load_fleet(MemoryFS({"fleet.yaml": fleet.encode()}))
    assert str(caught.value).startswith("fleet.yaml: apps[0].clusterLayer: ")
    assert "placeholders" in str(caught.value)


@pytest.mark.parametrize("value", [".nan", ".inf", "1e300", "99999999999999999999h", "1000000000000000000000"])
def test_duration_that_is_no_timedelta_is_a_fleet_error(value: str) -> None:
    # Was: ValueError (NaN) or OverflowError out of load_fleet.
    with pytest.raises(model.FleetConfigError) as caught:
        model.load_fleet(MemoryFS({"fleet.yaml": (FLEET + f"rollout: {{bakeTime: {value}}}\n").encode()}))
    assert str(caught.value).startswith("fleet.yaml: rollout.bakeTime: ")


def test_a_long_but_sane_duration_still_loads() -> None:
    fleet = model.load_fleet(MemoryFS({"fleet.yaml": (FLEET + "rollout: {bakeTime: 240h}\n").encode()}))
    assert fleet.rollout is not None and fleet.rollout.bake_time.days == 10


@pytest.mark.parametrize(("field", "value"), [("maxUnavailable", "'²'"), ("minReady", "'³'"),
                                              ("maxUnavailable", "'١٢'")])
def test_non_ascii_digits_are_not_a_count(field: str, value: str) -> None:
    # Was: ValueError from int('²'): str.isdigit() is true for superscripts.
    with pytest.raises(model.FleetConfigError) as caught:
        model.load_fleet(MemoryFS({"fleet.yaml": (FLEET + f"rollout: {{{field}: {value}}}\n").encode()}))
    assert str(caught.value).startswith(f"fleet.yaml: rollout.{field}: ")


def test_cluster_yaml_with_keys_of_several_types_fails_only_its_cluster() -> None:
    # Was: TypeError from sorting [1, 'b'], out of declared_clusters: every cluster failed to render.
    fs = MemoryFS({"clusters/bad/cluster.yaml": b"1: a\nb: c\n",
                   "clusters/good/cluster.yaml": b"labels: {env: prod}\n"})
    declared = clusters.declared_clusters(fs)
    assert declared["good"].error is None and declared["good"].labels == {"env": "prod"}
    assert str(declared["bad"].error) == "clusters/bad/cluster.yaml: mapping key 1 (int) is not a string; quote it"


DEPLOYMENT = b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"


def _build(kustomization: bytes) -> Any:
    fs = MemoryFS({"app/kustomization.yaml": kustomization, "app/deploy.yaml": DEPLOYMENT})
    return kustomize.build_layers(fs, resources=["app"])


def test_strategic_merge_patch_whose_metadata_is_not_a_mapping() -> None:
    # Was: AttributeError "'str' object has no attribute 'get'" from the patch step.
    with pytest.raises(KustomizeError) as caught:
        _build(b"resources: [deploy.yaml]\npatches:\n- patch: |-\n    kind: Deployment\n    metadata: web\n")
    assert str(caught.value).startswith("app/kustomization.yaml: strategic merge patch")
    assert "metadata is a str, not a mapping" in str(caught.value)


def test_json_patch_path_without_a_slash() -> None:
    # Was: jsonpointer.JsonPointerException "Location must start with /" out of the engine.
    with pytest.raises(KustomizeError) as caught:
        _build(b"resources: [deploy.yaml]\npatches:\n- target: {kind: Deployment}\n  patch: |-\n"
               b"    - {op: add, path: metadata/labels/x, value: y}\n")
    assert str(caught.value).startswith("app/kustomization.yaml: invalid JSON patch")
    assert "must start with /" in str(caught.value)


def test_generator_merge_into_an_object_whose_data_is_not_a_mapping() -> None:
    # Was: TypeError "'str' object is not a mapping" when a configMapGenerator merges into the base's ConfigMap.
    fs = MemoryFS({
        "app/kustomization.yaml": b"resources: [base]\nconfigMapGenerator:\n- {name: settings, behavior: merge, "
                                  b"literals: [A=1]}\n",
        "app/base/kustomization.yaml": b"resources: [cm.yaml]\n",
        "app/base/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: 'LOG_LEVEL info'\n",
    })
    with pytest.raises(KustomizeError) as caught:
        kustomize.build_layers(fs, resources=["app"])
    assert str(caught.value).startswith("app/kustomization.yaml: cannot merge ConfigMap")
    assert "its data is a str, not a mapping" in str(caught.value)


@pytest.mark.parametrize("data", ["{1: a, b: c}", "{~: a, b: c}", "{true: x}"])
def test_manifest_mapping_keys_that_are_not_strings(data: str) -> None:
    # Was: TypeError "'<' not supported between instances of 'NoneType' and 'str'" when a patch merged into the
    # object, or out of the bundle's JSON encoding. kubectl kustomize refuses such keys too.
    fs = MemoryFS({"app/kustomization.yaml": b"resources: [cm.yaml]\n",
                   "app/cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {data}\n".encode()})
    with pytest.raises(KustomizeError) as caught:
        kustomize.build_layers(fs, resources=["app"])
    assert str(caught.value).startswith("app/cm.yaml: mapping key ")
    assert "is not a string; quote it" in str(caught.value)


def test_bundle_nested_too_deeply_is_a_bundle_error() -> None:
    # Was: RecursionError out of protos.bundle.decode.
    data = b"[" * 3000
    with pytest.raises(bundle.BundleError, match="is not valid JSON"):
        bundle.decode(data, expected_digest=bundle.digest_of(data))


class _OneSecret:
    def __init__(self, data: dict[str, str]) -> None:
        self.data = data

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "data": self.data}


@pytest.mark.parametrize(("listing", "problem"), [
    (b"[" * 3000, "nests too deeply"),
    (json.dumps([{"group": 1, "kind": "K", "namespace": "", "name": "n", "apiVersion": "v1"}]).encode(),
     "non-string group"),
    (json.dumps([{"group": "", "kind": "K", "namespace": "", "name": ["n"], "apiVersion": "v1"}]).encode(),
     "non-string name"),
    (json.dumps({"group": ""}).encode(), "is a dict, not a list"),
    (json.dumps(["K/n"]).encode(), "entry is a str, not a mapping"),
])
def test_damaged_inventory_is_a_value_error_the_agent_survives(listing: bytes, problem: str) -> None:
    # Was: RecursionError (the agent stopped), or an inventory holding numbers and lists that failed later.
    store = inventory.InventoryStore(_OneSecret({"inventory.json": base64.b64encode(listing).decode()}),  # type: ignore[arg-type]
                                     namespace="convoy-system", name="convoy-inventory")
    with pytest.raises(ValueError, match="Secret/convoy-system/convoy-inventory: inventory is damaged") as caught:
        store.load()
    assert problem in str(caught.value)


def test_drift_event_time_out_of_range_is_an_invalid_request() -> None:
    # Was: accepted, then ValueError in the store's batch writer (INTERNAL to the spoke, report lost).
    report = pb.StatusReport(phase=pb.PHASE_PROGRESSING)
    event = report.drift_events.add(action="corrected", kind_of_drift="modified", app="web")
    event.ref.kind, event.ref.name = "ConfigMap", "c"
    event.at.seconds = 8574853690513424383
    with pytest.raises(limits.InvalidRequest, match=r"drift event on ConfigMap/c: drift_events\[\]\.at is not a valid"):
        limits.check_report(report, limits.ReportLimits(), cluster="prod-1")
