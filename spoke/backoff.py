"""Full-jitter exponential backoff, the one rule for every wait after a failure in the spoke.

The wait before retry ``attempt + 1`` is drawn uniformly from ``[0, min(cap, base * 2**attempt))``.
Full jitter (rather than a fixed or "equal jitter" schedule) spreads many spokes hit by the same
outage — a restarted hub, an API server that went away — over the whole window instead of sending
them back in waves. Pure: the caller sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["full_jitter"]

#: Past this many doublings any sane base is far above any cap; stopping here keeps 2.0 ** n finite
#: for a spoke that has counted failures for days.
_MAX_DOUBLINGS = 62


def full_jitter(attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``attempt`` failures in a row (counting from 0); ``rand`` draws from [0, 1)."""
    return rand() * min(cap, base * 2.0 ** min(max(attempt, 0), _MAX_DOUBLINGS))
