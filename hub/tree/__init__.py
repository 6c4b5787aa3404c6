"""The fleet repository as read at one revision: the bottom layer of the hub's pure parts.

* :mod:`hub.tree.repofs` — a read-only view of the repository at one revision (Git tree or directory)
* :mod:`hub.tree.loading` — YAML read safely (bounded aliases and depth, errors that name the file)
* :mod:`hub.tree.errors` — the :class:`~hub.tree.errors.RenderError` family that every reader of
  fleet content raises (bad paths, bad YAML, bad kustomizations, bounds)

Why a package of its own: the fleet model (``hub.fleet``), the renderer (``hub.render``) and the Git
source (``hub.source``) all read files of one revision and report the same errors about them. Kept
inside ``hub.render`` these made ``hub.fleet`` and ``hub.render`` import each other; here, below all
three, every arrow points down. It imports nothing from the rest of the hub.
"""
