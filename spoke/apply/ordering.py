"""Apply order: a declared table of stages and kinds, not scattered ``if``\\ s.

A bundle is applied as a list of :class:`AppStep`\\ s. The first step is the
bundle-wide *prelude*: every CustomResourceDefinition and Namespace of every
app, so a custom resource or namespaced object of any app finds its type and
its namespace (the caller waits for CRDs to be Established and namespaces to
exist before the next step). Then one step per app, in ``dependsOn`` order,
each holding its cluster-scoped objects, then its namespaced objects. Inside a
stage, objects follow :data:`KIND_ORDER` (the order kustomize's legacy sort and
fluxcd's ``ssa/sort.go`` agree on: things others refer to first, admission
webhooks last, so a webhook never rejects objects applied in the same run), and
keep their bundle order among equals.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from protos import ordering as shared_ordering
from protos.bundle import LABEL_APP
from protos.objects import group_of

__all__ = [
    "KIND_ORDER",
    "PRELUDE",
    "AppStep",
    "OrderingError",
    "Stage",
    "kind_rank",
    "plan",
    "stage_of",
]

Manifest = Mapping[str, Any]

#: Name of the bundle-wide first step that holds all CRDs and Namespaces.
PRELUDE = ""


class Stage(enum.IntEnum):
    """Apply stages, in the order they run."""

    #: CustomResourceDefinitions and Namespaces: the types and places everything else needs.
    CRDS_AND_NAMESPACES = 0
    #: Other cluster-scoped objects (ClusterRoles, StorageClasses, cluster-scoped custom resources).
    CLUSTER_SCOPED = 1
    #: Namespaced objects.
    NAMESPACED = 2


#: The apply order and built-in scopes are one table shared with the hub's bundle order.
KIND_ORDER = shared_ordering.KIND_ORDER
_CLUSTER_SCOPED = shared_ordering.BUILTIN_CLUSTER_SCOPED
#: Built-in namespaced kinds that are commonly written without a namespace.
_NAMESPACED_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io",
                                "rbac.authorization.k8s.io", "discovery.k8s.io", "coordination.k8s.io"})


class OrderingError(ValueError):
    """The apps of a bundle cannot be ordered (a ``dependsOn`` cycle)."""

    def __init__(self, message: str, *, apps: Sequence[str]) -> None:
        super().__init__(message)
        self.apps = tuple(apps)


@dataclasses.dataclass(frozen=True, slots=True)
class AppStep:
    """The objects of one app (or of the prelude) split by stage, each stage in apply order."""

    app: str                                             #: app name; :data:`PRELUDE` for the prelude
    depends_on: tuple[str, ...]                          #: apps that must be healthy first
    stages: tuple[tuple[Stage, tuple[Manifest, ...]], ...]  #: non-empty stages, in Stage order

    def objects(self, stage: Stage | None = None) -> tuple[Manifest, ...]:
        """The objects of one stage, or of all stages in order."""
        return tuple(o for s, objs in self.stages if stage is None or s == stage for o in objs)


def kind_rank(kind: str) -> int:
    """Position of ``kind`` in the apply order (see :mod:`protos.ordering`)."""
    return shared_ordering.kind_rank(kind)


def _crd_scopes(objects: Iterable[Manifest]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> cluster-scoped? for the CRDs a bundle brings along."""
    scopes: dict[tuple[str, str], bool] = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            if kind:
                scopes[(str(spec.get("group", "")), str(kind))] = spec.get("scope") == "Cluster"
    return scopes


def stage_of(obj: Manifest, *, crd_scopes: Mapping[tuple[str, str], bool] | None = None) -> Stage:
    """The stage an object applies in.

    Scope comes from the built-in table, then from ``crd_scopes`` (the bundle's own CRDs, as
    :func:`plan` passes them), and only then from whether the manifest names a namespace.
    """
    key = (group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
    if key in {("apiextensions.k8s.io", "CustomResourceDefinition"), ("", "Namespace")}:
        return Stage.CRDS_AND_NAMESPACES
    if key in _CLUSTER_SCOPED:
        return Stage.CLUSTER_SCOPED
    if crd_scopes is not None and key in crd_scopes:
        return Stage.CLUSTER_SCOPED if crd_scopes[key] else Stage.NAMESPACED
    if key[0] in _NAMESPACED_GROUPS or (obj.get("metadata") or {}).get("namespace"):
        return Stage.NAMESPACED
    return Stage.CLUSTER_SCOPED


def _app_order(apps: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Apps sorted so each comes after the apps it depends on; bundle order among the free ones."""
    by_name = {str(a["name"]): a for a in apps}
    done: set[str] = set()
    ordered: list[Mapping[str, Any]] = []
    pending = [str(a["name"]) for a in apps]
    while pending:
        for name in pending:
            # Dependencies on apps outside this bundle do not order anything here; the caller
            # decides what a missing dependency means.
            deps = [d for d in by_name[name].get("dependsOn") or [] if d in by_name]
            if all(d in done for d in deps):
                ordered.append(by_name[name])
                done.add(name)
                pending.remove(name)
                break
        else:
            raise OrderingError(
                f"apps {', '.join(pending)} depend on each other in a cycle (dependsOn)", apps=pending
            )
    return ordered


def _sorted(objects: Iterable[Manifest]) -> tuple[Manifest, ...]:
    # sorted() is stable: equal ranks keep their bundle order.
    return tuple(sorted(objects, key=lambda o: kind_rank(str(o.get("kind", "")))))


def plan(bundle: Mapping[str, Any]) -> list[AppStep]:
    """The apply plan of a bundle: the prelude, then one step per app in ``dependsOn`` order.

    Objects are assigned to apps by their ``convoy.dev/app`` label; objects of an app the bundle
    does not declare get a step of their own after the declared apps. Empty steps are left out.
    Raises :class:`OrderingError` on a ``dependsOn`` cycle.
    """
    objects: list[Manifest] = list(bundle.get("objects") or [])
    scopes = _crd_scopes(objects)
    apps = _app_order(list(bundle.get("apps") or []))

    prelude: list[Manifest] = []
    per_app: dict[str, dict[Stage, list[Manifest]]] = {str(a["name"]): {} for a in apps}
    for obj in objects:
        stage = stage_of(obj, crd_scopes=scopes)
        if stage == Stage.CRDS_AND_NAMESPACES:
            prelude.append(obj)
            continue
        app = str(((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_APP, ""))
        per_app.setdefault(app, {}).setdefault(stage, []).append(obj)

    steps: list[AppStep] = []
    if prelude:
        steps.append(AppStep(PRELUDE, (), ((Stage.CRDS_AND_NAMESPACES, _sorted(prelude)),)))
    depends = {str(a["name"]): tuple(str(d) for d in a.get("dependsOn") or []) for a in apps}
    for app, stages in per_app.items():
        if not stages:
            continue
        split = tuple((s, _sorted(stages[s])) for s in sorted(stages))
        steps.append(AppStep(app, depends.get(app, ()), split))
    return steps
