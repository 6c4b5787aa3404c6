"""No import cycle anywhere in the hub, between modules or between the packages that hold them.

The import-linter layers contract in pyproject.toml states the order of the hub's top-level packages;
this test covers what it does not: cycles inside a package (``hub.render.kustomize``, ``hub.api``, ...)
and between modules. A cycle is reported as the chain of names that closes it.
"""

from __future__ import annotations

import graphlib
from functools import cache

import grimp
import pytest


@cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("hub", include_external_packages=False, cache_dir=None)


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """The nodes of one cycle in ``edges`` (each node -> the nodes it imports), or None."""
    sorter = graphlib.TopologicalSorter(edges)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def _packages() -> list[str]:
    graph = _graph()
    return sorted(m for m in graph.modules if graph.find_children(m))


def test_no_cycle_between_hub_modules() -> None:
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycle(edges) is None


@pytest.mark.parametrize("package", _packages())
def test_no_cycle_between_the_parts_of_a_hub_package(package: str) -> None:
    """Inside ``package``, its direct children (a module, or a subpackage with all it holds) import one way."""
    graph = _graph()
    children = sorted(graph.find_children(package))

    def part_of(module: str) -> str | None:
        return next((c for c in children if module == c or module.startswith(c + ".")), None)

    edges: dict[str, set[str]] = {c: set() for c in children}
    for child in children:
        for module in {child, *graph.find_descendants(child)}:
            for imported in graph.find_modules_directly_imported_by(module):
                target = part_of(imported)
                if target is not None and target != child:
                    edges[child].add(target)
    assert _cycle(edges) is None, f"import cycle in {package}: " + " -> ".join(_cycle(edges) or [])
