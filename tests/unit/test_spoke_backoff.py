"""Full-jitter backoff: one rule for every wait the spoke makes after a failure."""

from __future__ import annotations

import pytest

from spoke import backoff


def test_the_window_doubles_from_the_base_and_stops_at_the_cap() -> None:
    # The largest draw shows the window itself.
    assert [backoff.full_jitter(n, base=0.5, cap=30.0, rand=lambda: 1.0) for n in range(8)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.full_jitter(0, base=0.5, cap=30.0, rand=lambda: 0.0) == 0.0
    assert backoff.full_jitter(1, base=0.5, cap=30.0, rand=lambda: 0.5) == pytest.approx(0.5)


def test_a_huge_attempt_count_still_gives_the_cap() -> None:
    # A spoke cut off from its hub for days counts thousands of attempts; 2.0 ** 5000 overflows.
    assert backoff.full_jitter(5000, base=0.1, cap=5.0, rand=lambda: 1.0) == 5.0


def test_draws_spread_over_the_whole_window() -> None:
    # Full jitter: 1,000 spokes reconnecting to a restarted hub arrive spread out, not in waves.
    delays = [backoff.full_jitter(8, base=0.5, cap=30.0) for _ in range(200)]
    assert min(delays) < 5 and max(delays) > 25 and max(delays) <= 30
