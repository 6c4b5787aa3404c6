"""Retries for Kubernetes API calls: what is transient, and how long to wait.

Retried: 429 (honouring ``Retry-After``), 500, 502, 503, 504 and connection failures (resets,
timeouts, refused). Everything else is the caller's to handle, including 409: only the caller
knows how to re-read and rebuild its write (see ``ClusterClient.update_with``).
Waits are exponential with full jitter (``spoke.backoff``), so many spokes hit by the same API outage
do not retry in lockstep.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from typing import TypeVar

from spoke import backoff
from spoke.cluster import errors

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "call", "is_retryable"]

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    attempts: int = 8           #: total tries, the first included
    base: float = 0.1           #: first backoff ceiling, seconds
    cap: float = 5.0            #: no single wait is longer than this
    max_retry_after: float = 10.0  #: a server's Retry-After is honoured up to this


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, errors.ConnectionFailedError):
        return True
    return isinstance(error, errors.ApiError) and error.status in RETRYABLE_STATUSES


def delay_for(error: BaseException, attempt: int, policy: RetryPolicy,
              rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
    if isinstance(error, errors.ApiError) and error.retry_after is not None:
        return float(min(max(error.retry_after, 0.0), policy.max_retry_after))
    return backoff.full_jitter(attempt, base=policy.base, cap=policy.cap, rand=rand)


def call(fn: Callable[[], T], *, policy: RetryPolicy,
         sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``fn``, retrying transient failures; the last failure is raised as is."""
    attempt = 0
    while True:
        try:
            return fn()
        except errors.ClusterError as exc:
            if not is_retryable(exc) or attempt + 1 >= policy.attempts:
                raise
            sleep(delay_for(exc, attempt, policy))
            attempt += 1
