"""The inventory: what the spoke applied, kept IN the cluster so prune and restarts never depend on memory.

One Secret in the spoke's namespace holds

* ``inventory.json`` — one entry per applied object: identity, apiVersion (needed to delete it later;
  ``ObjectRef`` has no version on purpose), app, and the hash of the manifest last applied;
* ``bundle.zlib``, ``digest``, ``commit``, ``signature`` — the last applied bundle, compressed, so a
  spoke restarted while the hub is unreachable verifies it again and keeps enforcing it.

A Secret rather than a ConfigMap because bundles may carry Secrets. Writes are read-modify-write
with the resourceVersion; a 409 re-reads and tries again (``ClusterClient.update_with``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from protos import bundle as bundles
from protos.objects import ObjectRef
from spoke.cluster import ClusterClient

__all__ = ["Inventory", "InventoryEntry", "InventoryStore", "decode", "encode", "manifest_hash"]

MANAGER = "convoy"


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of a manifest as the spoke sends it (canonical JSON)."""
    return "sha256:" + hashlib.sha256(bundles.encode(obj)).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class InventoryEntry:
    ref: ObjectRef
    api_version: str
    app: str
    hash: str


@dataclasses.dataclass(frozen=True)
class Inventory:
    """Applied objects plus the bundle they came from (``bundle_bytes`` are canonical, uncompressed)."""

    entries: Mapping[ObjectRef, InventoryEntry] = dataclasses.field(default_factory=dict)
    digest: str = ""
    commit: str = ""
    signature: bytes = b""
    bundle_bytes: bytes = b""

    def refs(self) -> set[ObjectRef]:
        return set(self.entries)

    def replace(self, *, entries: Iterable[InventoryEntry] | None = None, **changes: Any) -> Inventory:
        if entries is not None:
            changes["entries"] = {entry.ref: entry for entry in entries}
        return dataclasses.replace(self, **changes)


def encode(inventory: Inventory) -> dict[str, str]:
    """The Secret ``data`` (base64 values) for an inventory."""
    listing = [
        {"group": e.ref.group, "kind": e.ref.kind, "namespace": e.ref.namespace, "name": e.ref.name,
         "apiVersion": e.api_version, "app": e.app, "hash": e.hash}
        for e in sorted(inventory.entries.values(), key=lambda e: e.ref)
    ]
    raw: dict[str, bytes] = {
        "inventory.json": json.dumps(listing, separators=(",", ":")).encode(),
        "digest": inventory.digest.encode(),
        "commit": inventory.commit.encode(),
        "signature": inventory.signature,
        "bundle.zlib": bundles.compress(inventory.bundle_bytes) if inventory.bundle_bytes else b"",
    }
    return {key: base64.b64encode(value).decode("ascii") for key, value in raw.items()}


def decode(data: Mapping[str, str], *, max_bundle_bytes: int) -> Inventory:
    """An inventory from Secret ``data``; raises ``ValueError`` on a damaged one."""
    raw = {key: base64.b64decode(value) for key, value in data.items()}
    try:
        listing = json.loads(raw.get("inventory.json") or b"[]")
    except RecursionError as exc:  # arrays nested ~1,000 deep: damaged like any other bad JSON
        raise ValueError("inventory.json nests too deeply") from exc
    if not isinstance(listing, list):
        raise ValueError(f"inventory.json is a {type(listing).__name__}, not a list")
    entries = {}
    for item in listing:
        if not isinstance(item, dict):
            raise ValueError(f"an inventory.json entry is a {type(item).__name__}, not a mapping")
        fields = {name: item[name] for name in ("group", "kind", "namespace", "name", "apiVersion")}
        fields.update(app=item.get("app", ""), hash=item.get("hash", ""))
        # A number or a list here would be kept until the next save or prune fails on it.
        wrong = sorted(name for name, value in fields.items() if not isinstance(value, str))
        if wrong:
            raise ValueError(f"an inventory.json entry has non-string {', '.join(wrong)}")
        ref = ObjectRef(group=fields["group"], kind=fields["kind"], namespace=fields["namespace"],
                        name=fields["name"])
        entries[ref] = InventoryEntry(ref=ref, api_version=fields["apiVersion"], app=fields["app"],
                                      hash=fields["hash"])
    packed = raw.get("bundle.zlib") or b""
    return Inventory(
        entries=entries,
        digest=(raw.get("digest") or b"").decode(),
        commit=(raw.get("commit") or b"").decode(),
        signature=raw.get("signature") or b"",
        bundle_bytes=bundles.decompress(packed, max_size=max_bundle_bytes) if packed else b"",
    )


class InventoryStore:
    """Reads and writes the inventory Secret."""

    def __init__(self, client: ClusterClient, *, namespace: str, name: str,
                 max_bundle_bytes: int = 64 * 1024 * 1024) -> None:
        self._client = client
        self._namespace = namespace
        self._name = name
        self._max = max_bundle_bytes

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(group="", kind="Secret", namespace=self._namespace, name=self._name)

    def load(self) -> Inventory | None:
        """The stored inventory, or None when there is none (or it is damaged: say so in the log)."""
        live = self._client.get("v1", "Secret", self._namespace, self._name)
        if live is None:
            return None
        try:
            return decode(live.get("data") or {}, max_bundle_bytes=self._max)
        except (ValueError, KeyError, TypeError, bundles.BundleError) as exc:
            raise ValueError(f"{self.ref}: inventory is damaged: {exc}") from exc

    def save(self, inventory: Inventory) -> None:
        """Write the inventory; nothing is written when the stored one is the same."""
        data = encode(inventory)
        live = self._client.get("v1", "Secret", self._namespace, self._name)
        if live is not None and live.get("data") == data:
            return

        def mutate(live: dict[str, Any] | None) -> dict[str, Any]:
            obj = live or {"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": self._name, "namespace": self._namespace}}
            obj.setdefault("metadata", {}).setdefault("labels", {})[bundles.LABEL_MANAGED_BY] = "convoy-spoke"
            obj["type"] = "Opaque"
            obj["data"] = data
            obj.pop("stringData", None)
            return obj

        self._client.update_with("v1", "Secret", self._namespace, self._name, mutate, manager=MANAGER)
