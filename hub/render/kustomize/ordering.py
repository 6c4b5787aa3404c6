"""kustomize's legacy output order (``SortOrderTransformer``, the default of ``kubectl kustomize`` v5.5).

Kinds in ``ORDER_FIRST`` come first in that order, those in ``ORDER_LAST`` last,
all others between; ties break on kustomize's GVK and id sort strings. The top
kustomization's ``sortOptions`` may replace the two lists, or ask for ``fifo``
(the build's own order).
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

def _ranks(order_first: tuple[str, ...], order_last: tuple[str, ...]) -> dict[str, int]:
    ranks = {kind: index - len(order_first) for index, kind in enumerate(order_first)}
    ranks.update({kind: 1 + index for index, kind in enumerate(order_last)})
    return ranks


_RANK = _ranks(ORDER_FIRST, ORDER_LAST)


def kind_rank(kind: str) -> int:
    """kustomize's ``typeOrders``: negative for ORDER_FIRST kinds, positive for ORDER_LAST ones, else 0."""
    return _RANK.get(kind, 0)


def _gvk_sort_string(group: str, version: str, kind: str) -> str:
    return "_".join((group or "~G", version or "~V", kind or "~K"))


def _id_sort_string(res: Resource) -> str:
    group, version, kind = res.group, res.version, res.kind
    gvk = ".".join((kind or "[noKind]", version or "[noVer]", group or "[noGrp]"))
    return "|".join((gvk, res.namespace or "~X", res.name or "~N"))


def _key(res: Resource, ranks: dict[str, int]) -> tuple[int, int, str, str]:
    group, version, kind = res.group, res.version, res.kind
    gvk = _gvk_sort_string(group, version, kind)
    # kustomize compares Namespace kinds in reverse when one is in the core group, which puts the
    # core Namespace before any other group's Namespace kind.
    flip = 0 if kind != "Namespace" or not group else 1
    return (ranks.get(kind, 0), flip, gvk, _id_sort_string(res))


def legacy_sorted(resources: list[Resource], *, order_first: tuple[str, ...] | None = None,
                  order_last: tuple[str, ...] | None = None) -> list[Resource]:
    """kustomize's legacy order; ``sortOptions.legacySortOptions`` replace the default kind lists."""
    ranks = _RANK if order_first is None and order_last is None else _ranks(order_first or (), order_last or ())
    return sorted(resources, key=lambda res: _key(res, ranks))
