"""Resources in a build and the field specs that say where transformers write.

A :class:`Resource` is the manifest (a plain dict) plus what kustomize keeps in
its internal build annotations: every previous id (kind, name, namespace) the
object had, the prefixes and suffixes added on the way, and generator flags.
Name references are fixed at the end of a build from that history, exactly as
kustomize does it.
"""

from __future__ import annotations

import functools
import marshal
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "FieldSpec",
    "Resource",
    "clone",
    "field_specs",
    "is_cluster_scoped",
    "split_api_version",
    "split_path",
]

#: (apiVersion, kind) kustomize knows to be cluster-scoped (kyaml ``precomputedIsNamespaceScoped``, v5.5.0).
#: Anything else, custom resources included, counts as namespaced, as in kustomize.
CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset({
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1beta1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"),
    ("apiregistration.k8s.io/v1", "APIService"),
    ("apiregistration.k8s.io/v1beta1", "APIService"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("certificates.k8s.io/v1beta1", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "PriorityLevelConfiguration"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("networking.k8s.io/v1beta1", "IngressClass"),
    ("node.k8s.io/v1", "RuntimeClass"),
    ("node.k8s.io/v1beta1", "RuntimeClass"),
    ("policy/v1beta1", "PodSecurityPolicy"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("scheduling.k8s.io/v1beta1", "PriorityClass"),
    ("storage.k8s.io/v1", "CSIDriver"),
    ("storage.k8s.io/v1", "CSINode"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("storage.k8s.io/v1", "VolumeAttachment"),
    ("storage.k8s.io/v1beta1", "CSIDriver"),
    ("storage.k8s.io/v1beta1", "CSINode"),
    ("storage.k8s.io/v1beta1", "StorageClass"),
    ("storage.k8s.io/v1beta1", "VolumeAttachment"),
    ("v1", "ComponentStatus"),
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "NodeProxyOptions"),
    ("v1", "PersistentVolume"),
})

NOT_NAMESPACEABLE = "_non_namespaceable_"
DEFAULT_NAMESPACE = "default"


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` -> (``apps``, ``v1``); ``v1`` -> (``""``, ``v1``)."""
    group, _, version = api_version.rpartition("/")
    return group, version


def is_cluster_scoped(api_version: str, kind: str) -> bool:
    return (api_version, kind) in CLUSTER_SCOPED


def clone(value: Any) -> Any:
    """A deep copy of plain YAML data; marshal is several times faster than ``copy.deepcopy``."""
    return marshal.loads(marshal.dumps(value))


#: (kind, name, effective namespace) — an id a resource had before a transformer changed it.
PrevId = tuple[str, str, str]


@dataclass(slots=True, eq=False)
class SharedEntry:
    """A label or annotation one transformer created at several places of one object, still shared there.

    kustomize (``filtersutil.SetEntry``) puts one YAML node at every place where it creates the key, and a
    later transformer that finds the key overwrites that node in place: so ``labels`` without
    includeSelectors, which sets ``metadata.labels`` only, also changes the selectors where a base's
    ``commonLabels`` created the same key. A place stops sharing once something else replaced its value
    (a patch); that is approximated by its value no longer being the shared one.
    """

    key: str
    value: Any
    maps: list[dict[str, Any]]  # the mappings holding the key, by identity


@dataclass(slots=True, eq=False)
class Resource:
    """One object in a build, with kustomize's bookkeeping kept beside it (not in annotations)."""

    obj: dict[str, Any]
    source: str  # the file (or generator's kustomization) it came from, for messages
    prev: list[PrevId] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    needs_hash: bool = False
    behavior: str = "create"
    #: Names of the ``vars`` that read this object (kustomize's refVarNames).
    var_names: list[str] = field(default_factory=list)
    #: Labels and annotations added at several places that kustomize keeps as one node (see SharedEntry).
    shared: list[SharedEntry] = field(default_factory=list)
    #: The object's empty values (``key:``, not ``key: null``) as (mapping, key): a strategic merge drops them.
    empty_nulls: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    def sync_shared(self) -> None:
        """After a strategic merge: a shared value the patch changed at one place changes at all of them.

        kyaml's merge writes a patch's scalar into the object's node in place, and that node is shared.
        """
        for entry in self.shared:
            changed = [m[entry.key] for m in entry.maps if m.get(entry.key, entry.value) != entry.value]
            if not changed or any(value != changed[0] for value in changed):
                continue  # untouched, or set differently at several places: nothing to go by
            for shared_map in entry.maps:
                if entry.key in shared_map:
                    shared_map[entry.key] = changed[0]
            entry.value = changed[0]

    # -- identity -------------------------------------------------------------------------
    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion") or "")

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            self.obj["metadata"] = meta
        return meta

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("name") or "") if isinstance(meta, dict) else ""

    @name.setter
    def name(self, value: str) -> None:
        self.metadata["name"] = value

    @property
    def namespace(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("namespace") or "") if isinstance(meta, dict) else ""

    @property
    def group(self) -> str:
        return split_api_version(self.api_version)[0]

    @property
    def version(self) -> str:
        return split_api_version(self.api_version)[1]

    @property
    def cluster_scoped(self) -> bool:
        return is_cluster_scoped(self.api_version, self.kind)

    def effective_namespace(self) -> str:
        if self.cluster_scoped:
            return NOT_NAMESPACEABLE
        return self.namespace or DEFAULT_NAMESPACE

    def store_previous_id(self) -> None:
        self.prev.append((self.kind, self.name, self.effective_namespace()))

    def org_id(self) -> PrevId:
        return self.prev[0] if self.prev else (self.kind, self.name, self.effective_namespace())

    def cur_id(self) -> PrevId:
        return (self.kind, self.name, self.effective_namespace())

    def any_ids(self) -> list[PrevId]:
        return [self.cur_id(), *self.prev]

    def matches_id(self, api_version: str, kind: str, name: str, effective_ns: str) -> bool:
        """True when the current id or any previous id equals the given id (kustomize's "any id")."""
        if api_version != self.api_version:
            return False
        return any(ident == (kind, name, effective_ns) for ident in self.any_ids())

    def describe(self) -> str:
        group = self.group
        group_kind = f"{self.kind}.{group}" if group else self.kind
        if self.namespace:
            return f"{group_kind}/{self.namespace}/{self.name}"
        return f"{group_kind}/{self.name}"

    def labels(self) -> dict[str, Any]:
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, dict) else {}

    def annotations(self) -> dict[str, Any]:
        annotations = self.metadata.get("annotations")
        return annotations if isinstance(annotations, dict) else {}


def empty_values(obj: dict[str, Any], paths: list[tuple[str | int, ...]]) -> list[tuple[dict[str, Any], str]]:
    """The (mapping, key) pairs in ``obj`` that the loader's empty-value ``paths`` lead to."""
    result = []
    for path in paths:
        node: Any = obj
        for step in path[:-1]:
            node = node[step]
        result.append((node, str(path[-1])))
    return result


def effective_namespace_of(api_version: str, kind: str, namespace: str) -> str:
    if is_cluster_scoped(api_version, kind):
        return NOT_NAMESPACEABLE
    return namespace or DEFAULT_NAMESPACE


# -- field specs ------------------------------------------------------------------------------

_ESCAPED_SLASH = re.compile(r"(?<!\\)/")


def split_path(path: str) -> tuple[str, ...]:
    """``a/b\\/c/d`` -> (``a``, ``b/c``, ``d``), as kustomize's ``PathSplitter``."""
    return tuple(part.replace("\\/", "/") for part in _ESCAPED_SLASH.split(path))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Where a transformer acts: a path in objects of a (possibly partial) group/version/kind."""

    path: tuple[str, ...]
    group: str = ""
    version: str = ""
    kind: str = ""
    create: bool = False

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> FieldSpec:
        return cls(path=split_path(str(raw.get("path") or "")), group=str(raw.get("group") or ""),
                   version=str(raw.get("version") or ""), kind=str(raw.get("kind") or ""),
                   create=bool(raw.get("create", False)))

    def selects(self, group: str, version: str, kind: str) -> bool:
        return ((not self.kind or self.kind == kind) and (not self.group or self.group == group)
                and (not self.version or self.version == version))

    def selects_object(self, obj: dict[str, Any]) -> bool:
        group, version = split_api_version(str(obj.get("apiVersion") or ""))
        return self.selects(group, version, str(obj.get("kind") or ""))


@functools.cache
def field_specs(text: str) -> tuple[FieldSpec, ...]:
    """Parse one of the tables in :mod:`~hub.render.kustomize.tables` (once)."""
    return tuple(FieldSpec.parse(raw) for raw in yaml.safe_load(text) or [])


#: Called with (parent mapping, key) at the end of a path; may read, set or create ``parent[key]``.
Setter = Callable[[dict[str, Any], str], None]


def apply_field_spec(obj: dict[str, Any], spec: FieldSpec, setter: Setter, *,
                     leaf_create: Any = None) -> None:
    """Walk ``spec.path`` through ``obj`` (lists are entered element by element) and call ``setter``.

    Missing fields are created only when ``spec.create`` is set: intermediate ones as mappings, the
    last one as ``leaf_create()`` if given (kustomize's ``CreateKind``).
    """
    if not spec.selects_object(obj):
        return
    _walk(obj, spec.path, 0, spec.create, setter, leaf_create)


def _walk(node: Any, path: tuple[str, ...], index: int, create: bool, setter: Setter,
          leaf_create: Any) -> None:
    if node is None:
        return
    if isinstance(node, list):
        for element in node:
            _walk(element, path, index, create, setter, leaf_create)
        return
    if not isinstance(node, dict):
        return
    name = path[index]
    is_seq = name.endswith("[]")
    if is_seq:
        name = name[:-2]
    last = index == len(path) - 1
    # As kustomize: nothing is created for a transformer without a create kind, nor for `x[]`.
    can_create = create and leaf_create is not None and not is_seq
    if node.get(name) is None:
        if name not in node and not can_create:
            return
        if can_create:
            node[name] = leaf_create() if last else {}
    if last:
        setter(node, name)
    else:
        _walk(node[name], path, index + 1, create, setter, leaf_create)
