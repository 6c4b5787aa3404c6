"""The Convoy spoke: the light agent in every cluster.

Map: ``cli`` (``convoy spoke ...``) · ``agent`` (``reconcile_once``: fetch →
verify → apply → prune → assess → report) · ``hubclient`` · ``cluster/`` ·
``apply/`` (order, staged SSA, changeset) · ``inventory`` · ``drift`` ·
``health/`` (one module per kind) · ``report``.

Imports nothing from ``hub`` and needs neither SQLModel nor GitPython.
"""
