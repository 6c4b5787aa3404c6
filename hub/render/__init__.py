"""Rendering: from a fleet repository revision to each cluster's objects.

It reads the repository through :mod:`hub.tree` and the fleet model through :mod:`hub.fleet`
(both below it); nothing below imports it.

* :mod:`hub.render.kustomize` — the kustomize engine (native subset, external fallback)
* :mod:`hub.render.budgets` — the per-cluster render deadline the engine's loops check
* :mod:`hub.render.substitute` — ``${var}`` substitution (cluster name, labels, vars) after kustomize
* :mod:`hub.render.bundles` — stamping, apply order, duplicate and size checks, canonical bytes
* :mod:`hub.render.pipeline` — ``Renderer``: a fleet or one cluster, cached by input content ids
* :mod:`hub.render.adoption` — drift (SSA paths, live values) → the kustomize patches that adopt it
"""
