"""Rendering: from a fleet repository revision to each cluster's objects.

* :mod:`hub.render.repofs` — a read-only view of the repository at one revision (Git tree or directory)
* :mod:`hub.render.kustomize` — the kustomize engine (native subset, external fallback)
* :mod:`hub.render.errors` — the :class:`~hub.render.errors.RenderError` family every step raises
"""
