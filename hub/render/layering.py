"""Fields a later layer of an app drops that an earlier layer set: a warning for ``convoy validate``.

A kustomize Component that patches ``/metadata/annotations`` with a JSON-patch ``add`` or
``replace`` replaces the whole map, so what the overlays before it added quietly vanishes on
the clusters that have that layer (the sample fleet's canary once lost the prod overlay's
annotation this way, and passed its wave without it). Kustomize has no notion of "this layer
removed that"; we find it by building an app's layers one at a time: for each layer k, every
field present on an object built from layers 1..k-1 and absent from the same object built from
layers 1..k is reported, naming the cluster, the app, the object, the field and layer k's file.

:func:`dropped_fields` is the pure comparison; :func:`layer_warnings` runs the builds.
A removal can be deliberate (a JSON-patch ``remove``, a strategic-merge ``null``), so this
warns and never fails a render.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub.fleet import clusters as fleet_clusters
from hub.fleet import model, resolving
from hub.render import kustomize
from hub.render.kustomize import kustomization
from hub.tree import errors, repofs
from protos.objects import ObjectRef

__all__ = ["DroppedField", "LayerWarning", "dropped_fields", "layer_warnings"]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class DroppedField:
    """A field an object had before a layer and has no more after it."""

    ref: ObjectRef
    field: str      #: e.g. ``metadata.annotations['demo.convoy.dev/tier']``


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class LayerWarning:
    cluster: str
    app: str
    layer: str      #: the kustomization file of the layer that drops the field
    ref: ObjectRef
    field: str

    def __str__(self) -> str:
        return (f"cluster {self.cluster}: app {self.app}: {self.ref}: {self.layer} drops {self.field}, "
                "which an earlier layer set (a patch that replaces a whole map or list?)")


def _field(path: Sequence[str]) -> str:
    text = ""
    for part in path:
        if part.startswith("["):
            text += part  # a list element by name, already "[name]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _named(items: list[Any]) -> dict[str, Any] | None:
    """A list of objects with unique ``name``s (containers, ports, env) by name; None for other lists."""
    if not items or not all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in items):
        return None
    by_name = {item["name"]: item for item in items}
    return by_name if len(by_name) == len(items) else None


def _missing(before: Any, after: Any, path: list[str], found: list[str]) -> None:
    if isinstance(before, Mapping):
        if not isinstance(after, Mapping):
            return  # the value changed type: a change, not a drop
        for key, value in before.items():
            if key not in after or (after[key] is None and value is not None):
                found.append(_field([*path, str(key)]))
            else:
                _missing(value, after[key], [*path, str(key)], found)
    elif isinstance(before, list) and isinstance(after, list):
        # Lists of named objects are compared element by element (the way strategic merge
        # merges them); any other list is one value, which later layers may rewrite freely.
        old, new = _named(before), _named(after)
        if old is None or new is None:
            return
        for name, value in old.items():
            if name not in new:
                found.append(_field([*path, f"[{name}]"]))
            else:
                _missing(value, new[name], [*path, f"[{name}]"], found)


def dropped_fields(before: Iterable[Mapping[str, Any]],
                   after: Iterable[Mapping[str, Any]]) -> list[DroppedField]:
    """Fields of each object in ``before`` that the object of the same identity in ``after`` lacks.

    Objects only in one of the two (added, deleted or renamed by the layer) are not compared.
    """
    later = {ObjectRef.of(obj): obj for obj in after}
    dropped: list[DroppedField] = []
    for obj in before:
        ref = ObjectRef.of(obj)
        other = later.get(ref)
        if other is None:
            continue
        found: list[str] = []
        _missing(obj, other, [], found)
        dropped.extend(DroppedField(ref=ref, field=field) for field in found)
    return dropped


def layer_warnings(fs: repofs.RepoFS, fleet: model.Fleet,
                   clusters: Sequence[fleet_clusters.ClusterInfo]) -> list[LayerWarning]:
    """For every cluster and app with more than one layer: the fields each layer drops, sorted.

    Builds every prefix of each distinct layer list once (the native engine only: an app that
    needs the external tool, or fails to build, is left to the render's own error report).
    """
    options = kustomize.BuildOptions(allow_external=False)
    builds: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]] | None] = {}
    drops: dict[tuple[str, tuple[str, ...]], list[DroppedField]] = {}

    def build(base: str, components: tuple[str, ...]) -> list[dict[str, Any]] | None:
        key = (base, components)
        if key not in builds:
            try:
                builds[key] = kustomize.build_layers(fs, resources=[base], components=components,
                                                     options=options).objects
            except Exception:  # a failing build is the render's to report; a warning pass never fails
                builds[key] = None
        return builds[key]

    warnings: set[LayerWarning] = set()
    for cluster in clusters:
        if cluster.config_error is not None:
            continue
        try:
            plans = resolving.plan_cluster(fs, fleet, name=cluster.name, labels=cluster.labels)
        except errors.RenderError:
            continue
        for plan in plans:
            base, components = plan.app.path, plan.components
            for k in range(1, len(components) + 1):
                key = (base, components[:k])
                if key not in drops:
                    before, after = build(base, components[:k - 1]), build(base, components[:k])
                    drops[key] = dropped_fields(before, after) if before is not None and after is not None else []
                if not drops[key]:
                    continue
                layer = _layer_file(fs, components[k - 1])
                warnings.update(LayerWarning(cluster=cluster.name, app=plan.app.name, layer=layer, ref=drop.ref,
                                             field=drop.field) for drop in drops[key])
    return sorted(warnings)


def _layer_file(fs: repofs.RepoFS, directory: str) -> str:
    try:
        return kustomization.find_kustomization_file(fs, directory)
    except errors.RenderError:
        return directory
