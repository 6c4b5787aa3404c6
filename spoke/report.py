"""Status reports: the value the spoke tells the hub (``Status``), and ``Reporter``, which sends it.

``Reporter`` coalesces: many ``submit`` calls within ``window`` seconds become one report of the
latest status (a burst of drift events or health changes is one message). It also re-sends the
latest status every ``heartbeat`` seconds so the hub knows the spoke is alive. While the hub is
unreachable, statuses pile up as a backlog count; the first report that gets through carries the
newest status and says how many were held back. Sending is a callable, so this module has no gRPC.

Drift has two shapes here. ``Status.drift`` is the *current* drift set (what differs now and is
left in place): each report replaces the previous one, so an item corrected or reverted is simply
absent from the next report. ``DriftEvent``s are history (each detection and correction): the agent
``record``s them, the Reporter sends every one not yet delivered with the next report and drops it
once the hub has it, so coalescing and heartbeats neither lose nor repeat them. They go out at most
``EVENTS_PER_REPORT`` to a report (the hub's per-report limit is above that), the next batch at once,
so a long outage's backlog reaches the hub whole. Only beyond ``MAX_PENDING_EVENTS`` (memory is the
bound: minutes of a correction every few hundred milliseconds) are the oldest dropped, and then never
silently: the next delivery starts with one ``not_recorded`` event giving how many and over what span.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from protos.objects import ObjectRef
from protos.status import Action, DriftAction, HealthStatus, Phase
from spoke import backoff, drift

__all__ = ["EVENTS_PER_REPORT", "MAX_PENDING_EVENTS", "SYSTEM_CLOCK", "Clock", "DriftEvent", "DriftRecord",
           "ObjectStatus", "Reporter", "Status"]

log = logging.getLogger(__name__)

#: Drift events kept for the hub while it is away; the oldest are dropped (and reported as dropped) beyond this.
MAX_PENDING_EVENTS = 5_000
#: Drift events sent in one report; a larger backlog goes in several reports, one after the other.
EVENTS_PER_REPORT = 500


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectStatus:
    ref: ObjectRef
    app: str
    action: Action | None
    health: HealthStatus
    reason: str = ""
    error: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class DriftRecord:
    """One object that differs from its bundle now (and is left so: policy, pause or failure)."""

    ref: ObjectRef
    app: str
    kind_of_drift: str                     #: "modified" or "deleted"
    fields: tuple[drift.FieldDiff, ...]
    detected_at: dt.datetime
    managers: tuple[str, ...] = ()         #: who made the change (``drift.changed_by``)


@dataclasses.dataclass(frozen=True, slots=True)
class DriftEvent:
    """One detection or correction of drift, for the hub's history."""

    ref: ObjectRef
    app: str
    action: DriftAction
    kind_of_drift: str                     #: "modified" or "deleted"
    fields: tuple[drift.FieldDiff, ...] = ()
    managers: tuple[str, ...] = ()
    at: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC))
    message: str = ""                      #: why a correction failed


@dataclasses.dataclass(frozen=True)
class Status:
    phase: Phase
    commit: str = ""
    digest: str = ""
    objects: tuple[ObjectStatus, ...] = ()
    drift: tuple[DriftRecord, ...] = ()    #: the current drift set, not history
    drift_events: tuple[DriftEvent, ...] = ()   #: filled in by the Reporter when it sends
    errors: tuple[str, ...] = ()
    message: str = ""
    observed_at: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def same_as(self, other: Status | None) -> bool:
        """Equal but for the observation time (a heartbeat, not a change)."""
        return other is not None and dataclasses.replace(other, observed_at=self.observed_at) == self


SendFn = Callable[[Status, int], None]


class Clock(Protocol):
    """Where the Reporter's time comes from; tests pass a fake one so they never sleep."""

    def monotonic(self) -> float: ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set (True) or ``timeout`` seconds have passed (False)."""
        ...


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)


SYSTEM_CLOCK: Clock = _SystemClock()


class Reporter:
    """Coalescing, heartbeating, backlog-counting sender of the latest ``Status``.

    ``send(status, backlog)`` raises any ``Exception`` to mean "not delivered; try again later".
    """

    def __init__(self, send: SendFn, *, heartbeat: float = 30.0, window: float = 0.2,
                 retry_cap: float = 30.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self._send = send
        self._clock = clock
        self._heartbeat = heartbeat
        self._window = window
        self._retry_cap = retry_cap
        self._latest: Status | None = None
        self._sent: Status | None = None
        self._backlog = 0
        self._events: list[tuple[int, DriftEvent]] = []   #: not yet delivered, oldest first
        self._next_event = 0
        self.dropped_events = 0          #: dropped since start (a total, for logs and tests)
        self._lost_count = 0             #: dropped and not yet reported as dropped
        self._lost_first: dt.datetime | None = None
        self._lost_last: DriftEvent | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.online = False

    @property
    def latest(self) -> Status | None:
        return self._latest

    def submit(self, status: Status) -> None:
        """Queue ``status`` to be sent; a newer one submitted before the send replaces it."""
        with self._lock:
            if status.same_as(self._latest):
                return
            if not self.online and self._latest is not None and not self._latest.same_as(self._sent):
                self._backlog += 1  # an unsent report is being superseded while the hub is away
            self._latest = status
        self._wake.set()

    def record(self, events: list[DriftEvent] | tuple[DriftEvent, ...]) -> None:
        """Queue drift events for the hub; they go out with the next report, whatever its status."""
        if not events:
            return
        with self._lock:
            for event in events:
                self._events.append((self._next_event, event))
                self._next_event += 1
            excess = len(self._events) - MAX_PENDING_EVENTS
            if excess > 0:
                self._note_lost([e for _, e in self._events[:excess]])
                del self._events[:excess]
                self.dropped_events += excess
                log.warning("%d drift event(s) dropped while the hub was away (%d kept for it)", excess,
                            MAX_PENDING_EVENTS)
        self._wake.set()

    def _note_lost(self, dropped: list[DriftEvent]) -> None:
        """Count dropped events for the ``not_recorded`` event that will say so (lock held)."""
        if self._lost_first is None:
            self._lost_first = dropped[0].at
        self._lost_last = dropped[-1]
        self._lost_count += len(dropped)

    def _lost_event(self) -> DriftEvent | None:
        """The one event that says how many were dropped and when (lock held)."""
        last, first = self._lost_last, self._lost_first
        if not self._lost_count or last is None or first is None:
            return None
        return DriftEvent(
            last.ref, last.app, DriftAction.NOT_RECORDED, last.kind_of_drift, at=last.at,
            message=(f"{self._lost_count} drift event(s) not recorded, from {first:%Y-%m-%dT%H:%M:%SZ} to "
                     f"{last.at:%Y-%m-%dT%H:%M:%SZ}: the hub was unreachable and the spoke keeps at most "
                     f"{MAX_PENDING_EVENTS}; the cluster was still corrected, see the spoke's log"))

    @property
    def unrecorded_events(self) -> int:
        """Events dropped and not yet reported as dropped."""
        with self._lock:
            return self._lost_count

    @property
    def pending_events(self) -> tuple[DriftEvent, ...]:
        with self._lock:
            return tuple(e for _, e in self._events)

    def start(self) -> Reporter:
        self._thread = threading.Thread(target=self._run, name="convoy-reporter", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, flush: bool = False, timeout: float = 5.0) -> None:
        if flush and self.online:  # a last word to a reachable hub; never wait on an absent one
            self._try_send()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        last_attempt = 0.0
        while not self._stop.is_set():
            if failures:
                wait = backoff.full_jitter(failures, base=0.5, cap=self._retry_cap)
            else:
                wait = max(0.0, self._heartbeat - (self._clock.monotonic() - last_attempt))
            woke = self._clock.wait(self._wake, wait)
            if self._stop.is_set():
                return
            if woke:
                self._wake.clear()
                if self._clock.wait(self._stop, self._window):  # let the rest of a burst arrive
                    return
                self._wake.clear()
                with self._lock:
                    if (self._latest is not None and self._latest.same_as(self._sent) and not failures
                            and not self._events):
                        continue
            last_attempt = self._clock.monotonic()
            failures = 0 if self._try_send() else failures + 1

    def _try_send(self) -> bool:
        with self._lock:
            status, backlog = self._latest, self._backlog
            events = self._events[:EVENTS_PER_REPORT]
            lost, lost_count = self._lost_event(), self._lost_count
        if status is None:
            return True
        carried = ([lost] if lost is not None else []) + [e for _, e in events]
        try:
            self._send(dataclasses.replace(status, drift_events=tuple(carried)), backlog)
        except Exception as exc:  # any failure means "hub not reached"; the status stays queued
            if self.online:
                log.warning("status report not delivered (%s); will retry", exc)
            self.online = False
            return False
        with self._lock:
            self._sent = status
            if events:  # delivered: never again (records made meanwhile stay, they have later numbers)
                last = events[-1][0]
                self._events = [(n, e) for n, e in self._events if n > last]
            if lost is not None:  # said; any dropped meanwhile are said in the next report
                self._lost_count -= lost_count
                self._lost_first = None if not self._lost_count else lost.at
            more = bool(self._events) or self._lost_count > 0
            self._backlog = max(0, self._backlog - backlog)
            self.delivered += 1
            self.online = True
        if more:  # the rest of a backlog goes out now, not at the next heartbeat
            self._wake.set()
        return True
