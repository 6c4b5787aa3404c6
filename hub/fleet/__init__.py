"""The fleet repository's model and per-cluster resolution (pure; reads through a RepoFS).

* ``model`` — fleet.yaml: apps (base, targets, overlays, dependsOn, clusterLayer,
  driftPolicy, ignoreDifferences, rollout override) and the rollout strategy; ``load_fleet(fs)``.
* ``clusters`` — ``clusters/NAME/cluster.yaml`` (labels, vars), label merging (Git wins),
  ``ClusterInfo`` (what a render of one cluster depends on).
* ``resolving`` — which apps and layers apply to one cluster.
* ``editing`` — line edits of fleet.yaml and kustomization text that keep comments (``convoy drift adopt``).

Label selectors (both forms) live in :mod:`protos.selectors`, shared with the spoke and kustomize.
Rendering itself (kustomize, substitution, bundles, cache) lives in ``hub.render``, one layer
above: it imports this package, never the other way round.
"""
