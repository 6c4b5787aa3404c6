"""The inventory survives a round trip through Secret data, bundle included."""

from __future__ import annotations

import base64

import pytest

from protos import bundle as bundles
from protos.objects import ObjectRef
from spoke import inventory


def _entry(kind: str, ns: str, name: str, api_version: str = "v1") -> inventory.InventoryEntry:
    ref = ObjectRef(group=api_version.rpartition("/")[0], kind=kind, namespace=ns, name=name)
    return inventory.InventoryEntry(ref=ref, api_version=api_version, app="web", hash="sha256:" + "0" * 64)


def test_round_trip_keeps_entries_and_bundle() -> None:
    bundle_bytes = bundles.encode({"apiVersion": bundles.API_VERSION, "kind": "Bundle", "apps": [],
                                   "objects": [{"kind": "ConfigMap", "data": {"k": "v" * 1000}}]})
    inv = inventory.Inventory(entries={}, digest=bundles.digest_of(bundle_bytes), commit="abc123",
                              signature=b"\x01\x02", bundle_bytes=bundle_bytes)
    inv = inv.replace(entries=[_entry("ConfigMap", "shop", "cfg"), _entry("Deployment", "shop", "web", "apps/v1"),
                               _entry("Namespace", "", "shop")])
    data = inventory.encode(inv)
    assert all(isinstance(v, str) for v in data.values())
    assert len(base64.b64decode(data["bundle.zlib"])) < len(bundle_bytes)  # stored compressed
    back = inventory.decode(data, max_bundle_bytes=1 << 20)
    assert back == inv
    assert back.entries[ObjectRef("apps", "Deployment", "shop", "web")].api_version == "apps/v1"


def test_a_bundle_over_the_limit_is_refused() -> None:
    big = b"x" * 10_000
    data = inventory.encode(inventory.Inventory(bundle_bytes=big))
    with pytest.raises(bundles.BundleError):
        inventory.decode(data, max_bundle_bytes=1_000)


def test_manifest_hash_ignores_key_order() -> None:
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "y"}}
    b = {"metadata": {"namespace": "y", "name": "x"}, "kind": "ConfigMap", "apiVersion": "v1"}
    assert inventory.manifest_hash(a) == inventory.manifest_hash(b)
    assert inventory.manifest_hash(a) != inventory.manifest_hash({**a, "data": {"k": "v"}})


def _live(labels: dict[str, str], managers: list[tuple[str, str]]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "shop", "labels": labels,
                         "managedFields": [{"manager": m, "operation": op, "fieldsV1": {}} for m, op in managers]}}


def test_only_objects_with_both_of_convoys_marks_are_adopted_by_a_rebuild() -> None:
    from spoke.apply import applying

    assert inventory.APPLY_MANAGER == applying.MANAGER  # the rebuild looks for the manager the apply path sets
    ours = {bundles.LABEL_MANAGED_BY: bundles.MANAGED_BY_VALUE, bundles.LABEL_CLUSTER: "east"}
    assert inventory.applied_by_convoy(_live(ours, [("kubectl-edit", "Update"), ("convoy", "Apply")]), cluster="east")
    # copied labels, another manager: someone else's object
    assert not inventory.applied_by_convoy(_live(ours, [("kubectl-create", "Update")]), cluster="east")
    # Convoy's manager but an Update (the inventory Secret's own writes), or another cluster's label
    assert not inventory.applied_by_convoy(_live(ours, [("convoy", "Update")]), cluster="east")
    assert not inventory.applied_by_convoy(_live(ours, [("convoy", "Apply")]), cluster="west")
    assert not inventory.applied_by_convoy(_live({bundles.LABEL_CLUSTER: "east"}, [("convoy", "Apply")]),
                                           cluster="east")
