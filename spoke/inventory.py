"""The inventory: what the spoke applied, kept IN the cluster so prune and restarts never depend on memory.

One Secret in the spoke's namespace holds

* ``inventory.json`` — one entry per applied object: identity, apiVersion (needed to delete it later;
  ``ObjectRef`` has no version on purpose), app, and the hash of the manifest last applied;
* ``bundle.zlib``, ``digest``, ``commit``, ``signature`` — the last applied bundle, compressed, so a
  spoke restarted while the hub is unreachable verifies it again and keeps enforcing it.

Before a new bundle is applied the agent stores its *intent*: that bundle, and the old entries plus
one per object of the new bundle (hash empty: not applied yet). A spoke killed mid-apply so restarts
on the new bundle and prunes what is left of the old one; the inventory never lacks a live object.

An API server refuses a Secret over 1 MiB. An inventory that does not fit (a big cluster, a big
bundle) is stored in parts: its data, JSON and compressed, is cut into ``PART_BYTES`` pieces held
by Secrets named ``<name>-<generation>-<i>`` (label ``LABEL_PART``), and the main Secret keeps the
digest and commit, the generation and the SHA-256 of the whole. Parts are written first and the main
Secret last, so a spoke killed between them still reads the previous, whole inventory; parts of
other generations are deleted after. A missing or changed part makes ``load`` raise, never return a
partial inventory.

An inventory lost while the spoke was down (the Secret deleted, or damaged) is rebuilt at start from
the live objects that carry both of Convoy's ownership marks: its labels for this cluster
(``app.kubernetes.io/managed-by=convoy``, ``convoy.dev/cluster=<name>``) *and* an ``Apply`` entry of
Convoy's field manager in ``managedFields`` — an object someone else made with copied labels has no
such entry and is never adopted, so never pruned. The search covers every kind discovery says is
listable (the lost inventory's kinds are unknown, and no bundle is at hand yet), one label-selected
list per kind, bounded by ``REBUILD_SECONDS``; kinds not searched are named.

A Secret rather than a ConfigMap because bundles may carry Secrets. Writes are read-modify-write
with the resourceVersion; a 409 re-reads and tries again (``ClusterClient.update_with``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from protos import bundle as bundles
from protos.objects import ObjectRef
from spoke.cluster import ClusterClient, errors

__all__ = ["LABEL_PART", "PART_BYTES", "REBUILD_SECONDS", "Inventory", "InventoryEntry", "InventoryStore", "Rebuilt",
           "applied_by_convoy", "decode", "encode", "manifest_hash", "rebuild"]

log = logging.getLogger(__name__)

MANAGER = "convoy"
#: the field manager of Convoy's server-side apply (``spoke.apply.applying.MANAGER``; a test keeps them equal)
APPLY_MANAGER = "convoy"
#: the most seconds a rebuild from live objects spends listing kinds; the kinds left are named
REBUILD_SECONDS = 60.0
#: labels the Secrets holding parts of a split inventory (value: the inventory's name)
LABEL_PART = "convoy.dev/inventory-part"
#: bytes of one part, and the most one Secret's values may hold before the inventory is split
#: (an API server's limit is 1 MiB; the rest is room for keys and metadata)
PART_BYTES = 768 * 1024


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
            data = live.get("data") or {}
            if "parts" in data:
                data = self._load_parts({key: base64.b64decode(value) for key, value in data.items()})
            return decode(data, max_bundle_bytes=self._max)
        except (ValueError, KeyError, TypeError, zlib.error, bundles.BundleError) as exc:
            raise ValueError(f"{self.ref}: inventory is damaged: {exc}") from exc

    def save(self, inventory: Inventory) -> None:
        """Write the inventory (in parts when it is too big for one Secret); nothing when unchanged."""
        data = encode(inventory)
        if _size(data) > PART_BYTES:
            data = self._save_parts(inventory, data)
        live = self._client.get("v1", "Secret", self._namespace, self._name)
        if live is not None and live.get("data") == data:
            return
        self._write(self._name, data, part=False)
        self._delete_parts(keep=base64.b64decode(data["parts.generation"]).decode() if "parts" in data else "")

    def _save_parts(self, inventory: Inventory, data: Mapping[str, str]) -> dict[str, str]:
        """Write the parts; the main Secret's data that points at them."""
        blob = zlib.compress(json.dumps(data, sort_keys=True, separators=(",", ":")).encode(), 6)
        sha = hashlib.sha256(blob).hexdigest()
        generation = sha[:12]
        chunks = [blob[i:i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
        for index, chunk in enumerate(chunks):
            name = self._part_name(generation, index)
            live = self._client.get("v1", "Secret", self._namespace, name)
            wanted = {"chunk": base64.b64encode(chunk).decode("ascii")}
            if live is None or live.get("data") != wanted:
                self._write(name, wanted, part=True)
        raw = {"parts": str(len(chunks)).encode(), "parts.generation": generation.encode(),
               "parts.sha256": sha.encode(), "digest": inventory.digest.encode(), "commit": inventory.commit.encode()}
        return {key: base64.b64encode(value).decode("ascii") for key, value in raw.items()}

    def _part_name(self, generation: str, index: int) -> str:
        return f"{self._name}-{generation}-{index}"

    def _load_parts(self, raw: Mapping[str, bytes]) -> dict[str, str]:
        count, generation = int(raw["parts"]), raw["parts.generation"].decode()
        blob = b""
        for index in range(count):
            part = self._client.get("v1", "Secret", self._namespace, self._part_name(generation, index))
            if part is None:
                raise ValueError(f"part {self._part_name(generation, index)} of {count} is missing")
            blob += base64.b64decode((part.get("data") or {}).get("chunk", ""))
        if hashlib.sha256(blob).hexdigest() != raw["parts.sha256"].decode():
            raise ValueError(f"its {count} parts do not add up to what was written (changed or torn)")
        inflater = zlib.decompressobj()
        text = inflater.decompress(blob, 2 * self._max + PART_BYTES)  # bounded: a bundle plus its listing
        if inflater.unconsumed_tail:
            raise ValueError(f"its parts inflate past {2 * self._max + PART_BYTES} bytes")
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("its parts do not hold an inventory")
        return data

    def _delete_parts(self, *, keep: str) -> None:
        """Delete parts of other generations (after the main Secret stopped pointing at them)."""
        listed = self._client.list("v1", "Secret", namespace=self._namespace,
                                   label_selector=f"{LABEL_PART}={self._name}").items
        for secret in listed:
            name = str(secret.get("metadata", {}).get("name", ""))
            if not keep or not name.startswith(f"{self._name}-{keep}-"):
                self._client.delete("v1", "Secret", self._namespace, name)

    def _write(self, name: str, data: Mapping[str, str], *, part: bool) -> None:
        def mutate(live: dict[str, Any] | None) -> dict[str, Any]:
            obj = live or {"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": name, "namespace": self._namespace}}
            labels = obj.setdefault("metadata", {}).setdefault("labels", {})
            labels[bundles.LABEL_MANAGED_BY] = "convoy-spoke"
            if part:
                labels[LABEL_PART] = self._name
            obj["type"] = "Opaque"
            obj["data"] = dict(data)
            obj.pop("stringData", None)
            return obj

        self._client.update_with("v1", "Secret", self._namespace, name, mutate, manager=MANAGER)


@dataclasses.dataclass(frozen=True)
class Rebuilt:
    """An inventory rebuilt from live objects, and how far the search went."""

    inventory: Inventory
    searched: int                  #: kinds listed
    unsearched: tuple[str, ...]    #: kinds not listed (their list failed, or the time bound was reached)
    #: kinds the spoke's ServiceAccount may not list (403): it watches none of them either, so a
    #: namespaced install's objects of those kinds are not found
    forbidden: tuple[str, ...] = ()


def applied_by_convoy(obj: Mapping[str, Any], *, cluster: str) -> bool:
    """Both of Convoy's marks: its labels for ``cluster`` and an ``Apply`` entry of its field manager."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if labels.get(bundles.LABEL_MANAGED_BY) != bundles.MANAGED_BY_VALUE or labels.get(bundles.LABEL_CLUSTER) != cluster:
        return False
    return any(isinstance(entry, Mapping) and entry.get("manager") == APPLY_MANAGER
               and entry.get("operation") == "Apply" and not entry.get("subresource")
               for entry in metadata.get("managedFields") or ())


def rebuild(client: ClusterClient, *, cluster: str, budget: float = REBUILD_SECONDS,
            clock: Callable[[], float] = time.monotonic) -> Rebuilt:
    """Entries for every live object Convoy applied in ``cluster`` (no bundle: hashes empty, so the next
    bundle applies each again rather than judging it unchanged). Discovery failing raises ``ClusterError``."""
    deadline = clock() + budget
    selector = f"{bundles.LABEL_MANAGED_BY}={bundles.MANAGED_BY_VALUE},{bundles.LABEL_CLUSTER}={cluster}"
    kinds = client.listable_kinds()
    entries: dict[ObjectRef, InventoryEntry] = {}
    unsearched: list[str] = []
    forbidden: list[str] = []
    searched = 0
    for info in kinds:
        what = f"{info.kind} ({info.api_version})"
        if clock() > deadline:
            unsearched.append(what)
            continue
        try:
            listed = client.list(info.api_version, info.kind, label_selector=selector)
        except errors.ApiError as exc:
            if exc.status == 403:
                forbidden.append(what)
                continue
            log.warning("rebuilding the inventory: cannot list %s: %s", what, exc)
            unsearched.append(what)
            continue
        except errors.ClusterError as exc:
            log.warning("rebuilding the inventory: cannot list %s: %s", what, exc)
            unsearched.append(what)
            continue
        searched += 1
        for obj in listed.items:
            if not applied_by_convoy(obj, cluster=cluster):
                continue
            ref = ObjectRef.of(obj)
            labels = (obj.get("metadata") or {}).get("labels") or {}
            entries[ref] = InventoryEntry(ref=ref, api_version=info.api_version,
                                          app=str(labels.get(bundles.LABEL_APP, "")), hash="")
    return Rebuilt(inventory=Inventory(entries=entries), searched=searched, unsearched=tuple(unsearched),
                   forbidden=tuple(forbidden))


def _size(data: Mapping[str, str]) -> int:
    """Bytes of the values as the API server counts them (decoded)."""
    return sum(len(value) * 3 // 4 for value in data.values())
