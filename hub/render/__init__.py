"""Rendering: from a fleet repository revision to each cluster's objects.

* :mod:`hub.render.repofs` — a read-only view of the repository at one revision (Git tree or directory)
* :mod:`hub.render.kustomize` — the kustomize engine (native subset, external fallback)
* :mod:`hub.render.errors` — the :class:`~hub.render.errors.RenderError` family every step raises
* :mod:`hub.render.budgets` — the per-cluster render deadline the engine's loops check
* :mod:`hub.render.substitute` — ``${var}`` substitution (cluster name, labels, vars) after kustomize
* :mod:`hub.render.bundles` — stamping, apply order, duplicate and size checks, canonical bytes
* :mod:`hub.render.pipeline` — ``Renderer``: a fleet or one cluster, cached by input content ids
"""
