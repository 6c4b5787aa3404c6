"""How long one cluster's render may take: a cooperative deadline checked in the engine's loops.

A commit can make a render arbitrarily slow without any big file: a kustomization
tree where each level includes the previous one twice makes 2^N objects from 3N
small files, and name-reference fixing is quadratic in the objects. The object
bound (``max_bundle_objects``) stops most of these early; the deadline stops the rest, so
one hostile layer costs its clusters an error and never holds up later commits.

The pipeline enters a budget around each cluster's render (:func:`applied`); the
engine calls :func:`check` in every loop whose trip count a commit controls. A
context variable carries the budget so that the engine's many small functions need
no extra parameter, and renders in other threads have their own (or none: the CLI's
``convoy build`` runs without a deadline unless it sets one).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Iterator

from hub.tree.errors import LimitError

__all__ = ["Budget", "applied", "check"]


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    """A render's deadline (``time.monotonic()`` seconds) and the bound it came from."""

    deadline: float
    seconds: float


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("convoy_render_budget", default=None)


@contextlib.contextmanager
def applied(seconds: float | None) -> Iterator[Budget | None]:
    """Run the body under a deadline ``seconds`` from now (None: no deadline)."""
    budget = None if seconds is None else Budget(deadline=time.monotonic() + seconds, seconds=seconds)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def check(*, file: str | None = None) -> None:
    """Raise :class:`~hub.tree.errors.LimitError` once the current render's deadline has passed."""
    budget = _current.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise LimitError(f"the render took longer than {budget.seconds:g} s", setting="max_render_seconds",
                         file=file)
