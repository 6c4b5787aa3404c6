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

__all__ = ["AppPlan", "plan_cluster", "targeted_apps"]


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


def plan_cluster(fs: repofs.RepoFS, fleet: model.Fleet, *, name: str,
                 labels: Mapping[str, str]) -> tuple[AppPlan, ...]:
    plans: list[AppPlan] = []
    for app in targeted_apps(fleet, labels):
        components = [overlay.path for overlay in app.overlays if overlay.selector.matches(labels)]
        layer = app.cluster_layer_path(name)
        if layer is not None and fs.is_dir(layer):
            components.append(layer)
        else:
            layer = None
        plans.append(AppPlan(app=app, components=tuple(components), cluster_layer=layer))
    return tuple(plans)
