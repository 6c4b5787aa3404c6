"""Fuzz target: loading ``fleet.yaml`` and ``clusters/NAME/cluster.yaml``, and planning each cluster.

The input is a packed tree (see ``_support``) holding ``fleet.yaml`` and any ``clusters/*/cluster.yaml``.
``load_fleet`` must return a Fleet or raise a :class:`~hub.render.errors.RenderError` (FleetConfigError,
LimitError); ``declared_clusters`` must carry a broken cluster.yaml as that cluster's error and raise
nothing; planning every declared cluster against a valid fleet must not raise. Longer run:
``.venv/bin/python tests/fuzz/fuzz_fleet.py -max_total_time=600 /tmp/fleet-corpus tests/fuzz/corpus/fleet``.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import atheris

with atheris.instrument_imports(include=["hub", "protos"]):
    from hub.fleet import clusters, model, resolving
    from hub.tree import errors
    from tests.fuzz import _support


def test_one_input(data: bytes) -> None:
    fs = _support.MemoryFS(_support.unpack_tree(data))
    declared = clusters.declared_clusters(fs, max_bytes=64 * 1024)
    for decl in declared.values():
        assert decl.error is None or isinstance(decl.error, clusters.ClusterConfigError)
        assert decl.error is None or "\n" not in str(decl.error)
    try:
        fleet = model.load_fleet(fs, max_bytes=64 * 1024)
    except errors.RenderError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    for info in clusters.all_clusters(declared, {"registered": {"env": "prod"}}):
        for plan in resolving.plan_cluster(fs, fleet, name=info.name, labels=info.labels):
            assert plan.layers
            plan.app.ignore_entries(info.name, info.labels)
    for app in fleet.apps:
        fleet.rollout_for(app.name)


if __name__ == "__main__":
    _support.main(test_one_input)
