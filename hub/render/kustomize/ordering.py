"""kustomize's legacy output order (``SortOrderTransformer``, the default of ``kubectl kustomize`` v5.5).

Kinds in ``ORDER_FIRST`` come first in that order, those in ``ORDER_LAST`` last,
all others between; ties break on kustomize's GVK and id sort strings.
"""

from __future__ import annotations

from hub.render.kustomize.resources import Resource

__all__ = ["ORDER_FIRST", "ORDER_LAST", "kind_rank", "legacy_sorted"]

#: DO NOT CHANGE (upstream's words): kustomize's final legacy ordering.
ORDER_FIRST = (
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount",
    "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret",
    "Endpoints", "Service", "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim",
    "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget",
)
ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")

_RANK = {kind: index - len(ORDER_FIRST) for index, kind in enumerate(ORDER_FIRST)}
_RANK.update({kind: 1 + index for index, kind in enumerate(ORDER_LAST)})


def kind_rank(kind: str) -> int:
    """kustomize's ``typeOrders``: negative for ORDER_FIRST kinds, positive for ORDER_LAST ones, else 0."""
    return _RANK.get(kind, 0)


def _gvk_sort_string(group: str, version: str, kind: str) -> str:
    return "_".join((group or "~G", version or "~V", kind or "~K"))


def _id_sort_string(res: Resource) -> str:
    group, version, kind = res.group, res.version, res.kind
    gvk = ".".join((kind or "[noKind]", version or "[noVer]", group or "[noGrp]"))
    return "|".join((gvk, res.namespace or "~X", res.name or "~N"))


def _key(res: Resource) -> tuple[int, int, str, str]:
    group, version, kind = res.group, res.version, res.kind
    gvk = _gvk_sort_string(group, version, kind)
    # kustomize compares Namespace kinds in reverse when one is in the core group, which puts the
    # core Namespace before any other group's Namespace kind.
    flip = 0 if kind != "Namespace" or not group else 1
    return (_RANK.get(kind, 0), flip, gvk, _id_sort_string(res))


def legacy_sorted(resources: list[Resource]) -> list[Resource]:
    return sorted(resources, key=_key)
