"""``--rbac derived``: the least RBAC the spoke needs for one cluster's bundle.

Derived from what the spoke's own paths call on each object of the bundle:

* read — ``get`` (apply, prune, drift correction), ``list`` and ``watch`` (the drift watch and the
  post-apply read list each kind across all namespaces, by the cluster label): cluster-wide, for
  every group/resource the bundle holds;
* write — ``patch`` (server-side apply), ``create`` (an apply that creates is authorized for
  ``create`` too) and ``delete`` (prune; an immutable field is changed by delete and re-apply):
  cluster-scoped resources cluster-wide, namespaced ones only in the namespaces the bundle puts
  them in (a Role per namespace). ``update`` is never needed: the spoke writes objects by apply only;
* RBAC objects — ``escalate`` on exactly the Roles/ClusterRoles the bundle writes and ``bind`` on
  exactly the roles its bindings refer to (the spoke writes whatever RBAC the fleet declares,
  without holding those permissions itself);
* its own namespace — ``get`` on that Namespace (the agent checks it exists); its Secrets and
  ConfigMaps (credential, inventory) come from the install's state Role, as in every mode.

Discovery (``/api``, ``/apis``) needs nothing: every authenticated user holds ``system:discovery``.
Resources come from the built-in kinds (``protos.k8s_schema``) and the bundle's own
CustomResourceDefinitions (``spec.names.plural``); any other kind is an error naming it.

Pure: a bundle in, PolicyRules out; no cluster, no hub.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protos import k8s_schema
from protos.objects import group_of
from spoke.apply import ordering

__all__ = ["READ_VERBS", "WRITE_VERBS", "DerivationError", "DerivedRules", "derive", "plural_of"]

READ_VERBS = ("get", "list", "watch")
WRITE_VERBS = ("create", "patch", "delete")
RBAC_GROUP = "rbac.authorization.k8s.io"
#: Built-in kinds whose resource is not the regular plural of the kind.
_IRREGULAR = {("", "Endpoints"): "endpoints"}


class DerivationError(ValueError):
    """The bundle names something no rule can be derived for (the message names the object and why)."""


@dataclass(frozen=True)
class DerivedRules:
    """``cluster``: rules bound cluster-wide; ``namespaced``: rules per namespace (a Role in each)."""

    cluster: list[dict[str, Any]]
    namespaced: dict[str, list[dict[str, Any]]]


def plural_of(kind: str) -> str:
    """The resource of a built-in kind, as the API server names it (``meta.UnsafeGuessKindToResource``)."""
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def _crd_resources(objects: list[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[str, bool]]:
    """(group, kind) -> (plural, cluster-scoped?) for the CRDs the bundle brings along."""
    out: dict[tuple[str, str], tuple[str, bool]] = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            if names.get("kind") and names.get("plural"):
                out[(str(spec.get("group", "")), str(names["kind"]))] = (str(names["plural"]),
                                                                         spec.get("scope") == "Cluster")
    return out


def _rules(by_group: Mapping[str, set[str]], verbs: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
            for group, resources in sorted(by_group.items())]


def derive(bundle: Mapping[str, Any], *, namespace: str, source: str = "the bundle") -> DerivedRules:
    """The rules for ``bundle`` (a Bundle document: ``apps`` and ``objects``) and a spoke in ``namespace``.

    Raises :class:`DerivationError` naming the object of ``source`` whose kind is unknown.
    """
    objects = [o for o in bundle.get("objects") or [] if isinstance(o, Mapping)]
    if not objects:
        raise DerivationError(f"{source}: holds no objects: nothing to derive rules from")
    app_namespaces = {str(a.get("name")): str(a.get("namespace") or "") for a in bundle.get("apps") or []
                      if isinstance(a, Mapping)}
    crds = _crd_resources(objects)
    crd_scopes = {key: cluster_scoped for key, (_plural, cluster_scoped) in crds.items()}
    read: dict[str, set[str]] = {}
    cluster_write: dict[str, set[str]] = {}
    ns_write: dict[str, dict[str, set[str]]] = {}
    escalate: dict[str, set[str]] = {}   # roles / clusterroles -> names
    bind: dict[str, set[str]] = {}
    for obj in objects:
        api_version = str(obj.get("apiVersion", ""))
        kind = str(obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        group = group_of(api_version)
        if (group, kind) in crds:
            resource = crds[(group, kind)][0]
        elif k8s_schema.is_builtin(group, kind):
            resource = _IRREGULAR.get((group, kind)) or plural_of(kind)
        else:
            raise DerivationError(
                f"{source}: {kind} {name!r} ({api_version}): unknown kind: not a built-in kind and no "
                f"CustomResourceDefinition in the bundle declares it, so its resource and scope are unknown "
                f"(add its CRD to the fleet, or use --rbac cluster)")
        read.setdefault(group, set()).add(resource)
        stage = ordering.stage_of(obj, crd_scopes=crd_scopes)
        if stage == ordering.Stage.NAMESPACED:
            label_app = str((meta.get("labels") or {}).get("convoy.dev/app", ""))
            # As the spoke's engine places it: its own namespace, else its app's, else default.
            target = str(meta.get("namespace") or app_namespaces.get(label_app) or "default")
            ns_write.setdefault(target, {}).setdefault(group, set()).add(resource)
        else:
            cluster_write.setdefault(group, set()).add(resource)
        if group == RBAC_GROUP and kind in ("Role", "ClusterRole"):
            escalate.setdefault(resource, set()).add(name)
        if group == RBAC_GROUP and kind in ("RoleBinding", "ClusterRoleBinding"):
            ref = obj.get("roleRef") or {}
            role_resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            bind.setdefault(role_resource, set()).add(str(ref.get("name", "")))
    cluster_rules = _rules(read, READ_VERBS) + _rules(cluster_write, WRITE_VERBS)
    for verb, wanted in (("escalate", escalate), ("bind", bind)):
        for resource, names in sorted(wanted.items()):
            cluster_rules.append({"apiGroups": [RBAC_GROUP], "resources": [resource], "resourceNames": sorted(names),
                                  "verbs": [verb]})
    cluster_rules.append({"apiGroups": [""], "resources": ["namespaces"], "resourceNames": [namespace],
                          "verbs": ["get"]})
    return DerivedRules(cluster=cluster_rules,
                        namespaced={ns: _rules(groups, WRITE_VERBS) for ns, groups in sorted(ns_write.items())})
