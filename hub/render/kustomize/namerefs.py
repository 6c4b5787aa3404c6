"""Fixing name references after names changed (prefix, suffix, hash, namespace): kustomize's nameref filter.

For every field that names another object (``tables.NAME_REFERENCE``: a
ConfigMap in a pod's volumes, a ServiceAccount in a RoleBinding's subjects,
...) the value is matched against the *previous* names of the objects of the
referenced kind, narrowed the way kustomize narrows them (namespace, roleRef
kind, same prefixes/suffixes), and replaced with that object's current name.
"""

from __future__ import annotations

import functools
from typing import Any

from hub.render import budgets
from hub.render.kustomize import configurations
from hub.render.kustomize.resources import (
    DEFAULT_NAMESPACE,
    NOT_NAMESPACEABLE,
    FieldSpec,
    Resource,
    apply_field_spec,
)
from hub.tree.errors import KustomizeError

__all__ = ["fix_name_references"]

#: (group, version, kind) selector of the referenced kind
Gvk = tuple[str, str, str]


@functools.lru_cache(maxsize=64)
def _referrers_by_kind(
        back_references: tuple[configurations.NameBackReference, ...]) -> dict[str, tuple[tuple[FieldSpec, Gvk], ...]]:
    """Referrer field specs by the referrer kind they select, in kustomize's order (targets, then referrers).

    A kind's entries include the specs for any kind at their places; key "" holds only those.
    """
    entries = [(spec, entry.gvk) for entry in back_references for spec in entry.referrers]
    kinds = {spec.kind for spec, _ in entries}
    return {kind: tuple((spec, target) for spec, target in entries if spec.kind in (kind, ""))
            for kind in kinds | {""}}


def _selected(gvk: Gvk, selector: Gvk) -> bool:
    return all(not want or want == have for have, want in zip(gvk, selector, strict=True))


def _same_ending(a: list[str], b: list[str]) -> bool:
    shortest, longest = (a, b) if len(a) <= len(b) else (b, a)
    diff = len(longest) - len(shortest)
    if not shortest:
        return diff == 0
    return all(longest[i + diff] == shortest[i] for i in range(len(shortest)))


def _prefix_suffix_equals(res: Resource, other: Resource, *, allow_empty: bool) -> bool:
    if allow_empty:
        prefixes_ok = not res.prefixes or not other.prefixes or _same_ending(res.prefixes, other.prefixes)
        suffixes_ok = not res.suffixes or not other.suffixes or _same_ending(res.suffixes, other.suffixes)
        return prefixes_ok and suffixes_ok
    return _same_ending(res.prefixes, other.prefixes) and _same_ending(res.suffixes, other.suffixes)


def _role_binding_namespaces(referrer: Resource) -> set[str]:
    if referrer.kind != "RoleBinding":
        return set()
    found = set()
    for subject in referrer.obj.get("subjects") or []:
        if isinstance(subject, dict) and subject.get("kind") == "ServiceAccount" and "namespace" in subject:
            found.add(str(subject["namespace"]))
    return found


def _referable(referrer: Resource, resources: list[Resource]) -> list[Resource]:
    if referrer.cluster_scoped:
        return resources
    ns = referrer.effective_namespace()
    extra = _role_binding_namespaces(referrer)
    return [res for res in resources
            if res.cluster_scoped or res.effective_namespace() == ns or res.namespace in extra]


class _Filter:
    def __init__(self, referrer: Resource, spec: FieldSpec, target: Gvk, candidates: list[Resource]) -> None:
        self.referrer = referrer
        self.spec = spec
        self.target = target
        self.candidates = candidates

    def _select(self, old_name: str, candidates: list[Resource], *, with_namespace: bool) -> Resource | None:
        referrer = self.referrer
        found = [res for res in candidates if any(prev[1] == old_name for prev in res.prev)]
        found = [res for res in found
                 if any(_selected((res.group, res.version, prev[0]), self.target) for prev in res.prev)]
        if "/".join(self.spec.path).endswith("roleRef/name"):
            role_ref = referrer.obj.get("roleRef")
            if isinstance(role_ref, dict) and "apiGroup" in role_ref and "kind" in role_ref:
                selector = (str(role_ref["apiGroup"] or ""), "", str(role_ref["kind"] or ""))
                found = [res for res in found
                         if any(_selected((res.group, res.version, prev[0]), selector) for prev in res.prev)]
        if not referrer.cluster_scoped:
            ns = referrer.effective_namespace()
            found = [res for res in found
                     if res.cluster_scoped or res.kind == "ServiceAccount" or res.effective_namespace() == ns]
        if len(found) == 1:
            return found[0]
        found = [res for res in found if _prefix_suffix_equals(res, referrer, allow_empty=True)]
        if len(found) > 1:
            found = [res for res in found if _prefix_suffix_equals(res, referrer, allow_empty=False)]
        if len(found) == 1:
            return found[0]
        if not found:
            return None
        first = found[0]
        if all(res.name == first.name and (not with_namespace or res.namespace == first.namespace)
               for res in found):
            return first
        raise KustomizeError(
            f"found several objects {old_name!r} could refer to: {', '.join(res.describe() for res in found)}",
            obj=referrer.describe(), file=referrer.source)

    def _set_mapping(self, node: dict[str, Any]) -> None:
        if "name" not in node:
            raise KustomizeError(f"no 'name' field in {'/'.join(self.spec.path)}",
                                 obj=self.referrer.describe(), file=self.referrer.source)
        candidates = self.candidates
        if "namespace" in node:
            wanted = str(node["namespace"])
            by_original = [res for res in candidates if _org_effective_ns(res) == wanted]
            if by_original:
                candidates = by_original
            else:
                candidates = [res for res in candidates
                              if res.effective_namespace() == wanted and wanted != NOT_NAMESPACEABLE]
        old = str(node["name"])
        referral = self._select(old, candidates, with_namespace=True)
        if referral is None:
            return
        if referral.name == old and not referral.namespace:
            return
        node["name"] = referral.name
        if referral.namespace:
            node["namespace"] = referral.namespace

    def _set_scalar(self, value: str) -> str:
        referral = self._select(value, self.candidates, with_namespace=False)
        return referral.name if referral is not None else value

    def __call__(self, parent: dict[str, Any], key: str) -> None:
        value = parent.get(key)
        if value is None:
            return
        if isinstance(value, str):
            parent[key] = self._set_scalar(value)
        elif isinstance(value, dict):
            self._set_mapping(value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    value[index] = self._set_scalar(item)
                elif isinstance(item, dict):
                    self._set_mapping(item)


def _org_effective_ns(res: Resource) -> str:
    ns = res.org_id()[2]
    if ns == NOT_NAMESPACEABLE:
        return NOT_NAMESPACEABLE
    return ns or DEFAULT_NAMESPACE


def fix_name_references(resources: list[Resource], back_references: tuple[configurations.NameBackReference, ...]
                        = configurations.DEFAULT.name_reference) -> None:
    """Rewrite every reference to an object whose name changed during the build."""
    if not any(res.prev for res in resources):
        return  # nothing was renamed or moved: no reference can be stale
    index = _referrers_by_kind(back_references)
    for res in resources:
        budgets.check(file=res.source)  # quadratic in the objects: the loop a big build spends its time in
        org_kind = res.org_id()[0]
        group, version = res.group, res.version
        filters = [(spec, target) for spec, target in index.get(org_kind, index[""])
                   if spec.selects(group, version, org_kind)]
        if not filters:
            continue
        candidates = _referable(res, resources)
        for spec, target in filters:
            apply_field_spec(res.obj, spec, _Filter(res, spec, target, candidates))
