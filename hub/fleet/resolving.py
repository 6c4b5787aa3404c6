"""Which apps and layers apply to a cluster.

For each app whose ``targets`` match the cluster's labels (in dependsOn order),
the layers are: the app's base, then each overlay Component whose selector
matches (in declared order), then the per-cluster layer Component when the
app's ``clusterLayer`` template names a directory that exists. Pure, apart from
one ``is_dir`` per app on the repository view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from hub.fleet import model
from hub.tree import repofs

__all__ = ["AppPlan", "SelectionMemo", "plan_cluster", "targeted_apps"]




@dataclasses.dataclass(frozen=True, slots=True)
class AppPlan:
    """One app as it renders for one cluster."""

    app: model.App
    components: tuple[str, ...]     #: overlay Components then the per-cluster layer, in apply order
    cluster_layer: str | None       #: the per-cluster layer in use, if any

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.app.path, *self.components)


def targeted_apps(fleet: model.Fleet, labels: Mapping[str, str]) -> tuple[model.App, ...]:
    """The apps whose ``targets`` match ``labels``, in dependsOn order."""
    return tuple(app for app in fleet.apps if app.targets.matches(labels))


_Selection = tuple[tuple[model.App, tuple[str, ...]], ...]


def _selection(fleet: model.Fleet, labels: Mapping[str, str]) -> _Selection:
    """Each app targeting ``labels``, with the paths of its overlays whose selector matches."""
    return tuple((app, tuple(overlay.path for overlay in app.overlays if overlay.selector.matches(labels)))
                 for app in targeted_apps(fleet, labels))


class SelectionMemo:
    """Shares selector matching between clusters of one fleet whose labels agree on every key a selector reads.

    At 10,000 clusters, matching each cluster's labels against every app's targets and overlays was half
    the cost of a render served from the cache. Valid for the one :class:`~hub.fleet.model.Fleet` it was made for.
    """

    def __init__(self, fleet: model.Fleet) -> None:
        self.fleet = fleet
        keys: set[str] = set()
        for app in fleet.apps:
            keys.update(requirement.key for requirement in app.targets.requirements)
            for overlay in app.overlays:
                keys.update(requirement.key for requirement in overlay.selector.requirements)
        self._keys = tuple(sorted(keys))
        self._selections: dict[tuple[str | None, ...], _Selection] = {}

    def selection(self, labels: Mapping[str, str]) -> _Selection:
        values = tuple(labels.get(key) for key in self._keys)
        found = self._selections.get(values)
        if found is None:
            found = self._selections[values] = _selection(self.fleet, labels)
        return found


def plan_cluster(fs: repofs.RepoFS, fleet: model.Fleet, *, name: str,
                 labels: Mapping[str, str], memo: SelectionMemo | None = None) -> tuple[AppPlan, ...]:
    """``memo``, made for this ``fleet``, shares selector matching between clusters (see :class:`SelectionMemo`)."""
    selection = memo.selection(labels) if memo is not None and memo.fleet is fleet else _selection(fleet, labels)
    plans: list[AppPlan] = []
    for app, overlays in selection:
        components = list(overlays)
        layer = app.cluster_layer_path(name)
        if layer is not None and fs.is_dir(layer):
            components.append(layer)
        else:
            layer = None
        plans.append(AppPlan(app=app, components=tuple(components), cluster_layer=layer))
    return tuple(plans)
