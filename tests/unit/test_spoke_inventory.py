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
