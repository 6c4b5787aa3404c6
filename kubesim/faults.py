"""Fault injection per cluster, switchable at run time (in-process or ``PUT /kubesim/v1/clusters/{c}/faults``).

``Faults`` is what a test sets; the server consults it on every request of that cluster:

* ``error_rates``: ``{status code: probability}`` for 429 (answered with ``Retry-After``), 500 and 503,
  and 502/504 (what a load balancer in front of the API server answers: plain text, no Status body);
* ``latency``: seconds added before each request is handled;
* ``drop_rate``: probability of closing the connection without an answer;
* ``stall_rate`` / ``stall_for``: probability that a response sends its headers and the start of its
  body, then nothing for ``stall_for`` seconds before the connection is cut (only a read timeout
  notices: the connection stays open and no FIN or RST arrives meanwhile);
* ``watch_cut_after``: seconds after which every watch stream is cut mid-way (no terminating chunk);
* ``seed``: makes the random draws repeatable;
* ``clock_ahead``: seconds the cluster's clock runs ahead of real time — for what the API server
  decides by its clock (a TokenRequest token's expiry), so a test need not wait ten minutes.

The HTTP form is the same fields as JSON, e.g. ``{"error_rates": {"503": 0.5}, "latency": 0.1}``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULT_CODES", "Faults", "FaultsError"]

FAULT_CODES = (429, 500, 502, 503, 504)


class FaultsError(ValueError):
    """A faults document that cannot be used, naming the field that is wrong."""


@dataclass(frozen=True)
class Faults:
    error_rates: Mapping[int, float] = field(default_factory=dict)
    latency: float = 0.0
    drop_rate: float = 0.0
    watch_cut_after: float | None = None
    stall_rate: float = 0.0
    stall_for: float = 60.0
    retry_after: int = 1
    seed: int | None = None
    clock_ahead: float = 0.0
    _random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        for code, rate in self.error_rates.items():
            if code not in FAULT_CODES:
                raise FaultsError(f"faults: error_rates: status {code} is not one of {FAULT_CODES}")
            if not 0.0 <= rate <= 1.0:
                raise FaultsError(f"faults: error_rates[{code}]: {rate} is not a probability")
        if not 0.0 <= self.drop_rate <= 1.0:
            raise FaultsError(f"faults: drop_rate: {self.drop_rate} is not a probability")
        if not 0.0 <= self.stall_rate <= 1.0:
            raise FaultsError(f"faults: stall_rate: {self.stall_rate} is not a probability")
        if self.stall_for < 0:
            raise FaultsError(f"faults: stall_for: {self.stall_for} is negative")
        if self.latency < 0:
            raise FaultsError(f"faults: latency: {self.latency} is negative")
        if self.seed is not None:
            self._random.seed(self.seed)

    @property
    def active(self) -> bool:
        return bool(self.error_rates or self.latency or self.drop_rate or self.stall_rate
                    or self.watch_cut_after is not None)

    def draw_error(self) -> int | None:
        """The status code to fail this request with, if any."""
        for code, rate in sorted(self.error_rates.items()):
            if rate and self._random.random() < rate:
                return code
        return None

    def draw_drop(self) -> bool:
        return bool(self.drop_rate) and self._random.random() < self.drop_rate

    def draw_stall(self) -> bool:
        return bool(self.stall_rate) and self._random.random() < self.stall_rate

    @classmethod
    def from_json(cls, doc: Any) -> Faults:
        if not isinstance(doc, Mapping):
            raise FaultsError("faults: the body must be a JSON object")
        known = {"error_rates", "latency", "drop_rate", "watch_cut_after", "stall_rate", "stall_for",
                 "retry_after", "seed", "clock_ahead"}
        unknown = set(doc) - known
        if unknown:
            raise FaultsError(f"faults: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        try:
            rates = {int(k): float(v) for k, v in (doc.get("error_rates") or {}).items()}
            cut = doc.get("watch_cut_after")
            return cls(
                error_rates=rates,
                latency=float(doc.get("latency", 0.0)),
                drop_rate=float(doc.get("drop_rate", 0.0)),
                watch_cut_after=None if cut is None else float(cut),
                stall_rate=float(doc.get("stall_rate", 0.0)),
                stall_for=float(doc.get("stall_for", 60.0)),
                retry_after=int(doc.get("retry_after", 1)),
                seed=None if doc.get("seed") is None else int(doc["seed"]),
                clock_ahead=float(doc.get("clock_ahead", 0.0)),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, FaultsError):
                raise
            raise FaultsError(f"faults: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "error_rates": {str(k): v for k, v in self.error_rates.items()},
            "latency": self.latency,
            "drop_rate": self.drop_rate,
            "watch_cut_after": self.watch_cut_after,
            "stall_rate": self.stall_rate,
            "stall_for": self.stall_for,
            "retry_after": self.retry_after,
            "seed": self.seed,
            "clock_ahead": self.clock_ahead,
        }
