"""The Reporter coalesces bursts, heartbeats, and counts a backlog while the hub is away.

Time is a :class:`~tests.clocks.FakeClock`: the tests move it and never sleep.
"""

from __future__ import annotations

import threading

from protos.objects import ObjectRef
from protos.status import DriftAction, Phase
from spoke import report
from tests.clocks import FakeClock


class Hub:
    def __init__(self) -> None:
        self.sent: list[tuple[report.Status, int]] = []
        self.down = False
        self.lock = threading.Lock()

    def send(self, status: report.Status, backlog: int) -> None:
        if self.down:
            raise ConnectionError("hub down")
        with self.lock:
            self.sent.append((status, backlog))


def _reporter(hub: Hub, clock: FakeClock, **options: float) -> report.Reporter:
    reporter = report.Reporter(hub.send, clock=clock, **options).start()
    clock.settle()
    return reporter


def test_a_burst_is_one_report_of_the_latest() -> None:
    hub, clock = Hub(), FakeClock()
    reporter = _reporter(hub, clock, heartbeat=60, window=0.3)
    try:
        for i in range(50):
            reporter.submit(report.Status(phase=Phase.PROGRESSING, message=f"step {i}"))
        clock.advance(0.1)
        assert hub.sent == []  # still inside the window
        clock.advance(0.2)
        assert len(hub.sent) == 1
        clock.advance(30)  # nothing else goes out before the heartbeat
        assert len(hub.sent) == 1
        assert hub.sent[0][0].message == "step 49"
    finally:
        reporter.stop()


def test_unchanged_status_is_not_resent_before_the_heartbeat() -> None:
    hub, clock = Hub(), FakeClock()
    reporter = _reporter(hub, clock, heartbeat=60, window=0.05)
    try:
        reporter.submit(report.Status(phase=Phase.READY))
        clock.advance(0.05)
        assert len(hub.sent) == 1
        reporter.submit(report.Status(phase=Phase.READY))  # same content, new observed_at
        clock.advance(30)
        assert len(hub.sent) == 1
    finally:
        reporter.stop()


def test_heartbeat_resends_the_latest() -> None:
    hub, clock = Hub(), FakeClock()
    reporter = _reporter(hub, clock, heartbeat=0.2, window=0.01)
    try:
        reporter.submit(report.Status(phase=Phase.READY))
        clock.advance(0.01)
        assert len(hub.sent) == 1
        clock.advance(0.1)
        assert len(hub.sent) == 1  # half a heartbeat: nothing yet
        clock.advance(0.1)
        clock.advance(0.2)
        assert len(hub.sent) == 3 and all(s.phase == Phase.READY for s, _ in hub.sent)
    finally:
        reporter.stop()


def test_backlog_is_reported_when_the_hub_returns() -> None:
    hub, clock = Hub(), FakeClock()
    hub.down = True
    reporter = _reporter(hub, clock, heartbeat=60, window=0.01, retry_cap=0.2)
    try:
        for phase in (Phase.APPLYING, Phase.PROGRESSING, Phase.READY):
            reporter.submit(report.Status(phase=phase))
            clock.advance(0.05)
        assert hub.sent == []
        hub.down = False
        clock.advance(0.2)  # the longest retry delay
        assert len(hub.sent) == 1
        status, backlog = hub.sent[0]
        assert status.phase == Phase.READY
        assert backlog == 2
    finally:
        reporter.stop()


def _event(name: str, action: DriftAction = DriftAction.CORRECTED) -> report.DriftEvent:
    return report.DriftEvent(ObjectRef("apps", "Deployment", "shop", name), "web", action, "modified")


def test_drift_events_go_out_once_even_when_the_status_does_not_change() -> None:
    hub, clock = Hub(), FakeClock()
    reporter = _reporter(hub, clock, heartbeat=0.3, window=0.01)
    try:
        reporter.submit(report.Status(phase=Phase.READY))
        clock.advance(0.01)
        assert len(hub.sent) == 1
        # Detected and corrected between two reports: the status is the same, the events are news.
        reporter.record([_event("web", DriftAction.DETECTED), _event("web")])
        clock.advance(0.01)
        assert len(hub.sent) == 2
        clock.advance(0.3)
        clock.advance(0.3)  # heartbeats after that carry nothing again
        assert len(hub.sent) == 4
        sent = [[e.action for e in s.drift_events] for s, _ in hub.sent]
        assert sent[0] == [] and sent[1] == ["detected", "corrected"] and all(s == [] for s in sent[2:])
        assert reporter.pending_events == ()
    finally:
        reporter.stop()


def test_drift_events_wait_for_the_hub_bounded_and_in_order() -> None:
    hub, clock = Hub(), FakeClock()
    hub.down = True
    reporter = _reporter(hub, clock, heartbeat=60, window=0.01, retry_cap=0.1)
    try:
        reporter.submit(report.Status(phase=Phase.READY))
        reporter.record([_event(f"w{i}") for i in range(report.MAX_PENDING_EVENTS + 3)])
        clock.advance(0.01)
        clock.advance(0.2)
        assert hub.sent == [] and len(reporter.pending_events) == report.MAX_PENDING_EVENTS
        assert reporter.dropped_events == 3
        hub.down = False
        for _ in range(1_000):  # one report after another, each a retry delay at most
            if reporter.pending_events == () and reporter.unrecorded_events == 0:
                break
            clock.advance(0.1)
        assert reporter.pending_events == () and reporter.unrecorded_events == 0
        delivered = [e for s, _ in hub.sent for e in s.drift_events]
        # What did not fit is said first, as its own event, never silently.
        assert delivered[0].action == DriftAction.NOT_RECORDED
        assert delivered[0].message.startswith("3 drift event(s) not recorded")
        names = [e.ref.name for e in delivered[1:]]
        assert names == [f"w{i}" for i in range(3, report.MAX_PENDING_EVENTS + 3)]
        assert all(len(s.drift_events) <= report.EVENTS_PER_REPORT + 1 for s, _ in hub.sent)
    finally:
        reporter.stop()


def test_a_long_outage_of_corrections_all_reach_the_hub() -> None:
    # One object corrected every second for six minutes while the hub is away: 720 detections and
    # 720 corrections. Every one reaches the hub's history, in order, in reports it accepts.
    hub, clock = Hub(), FakeClock()
    hub.down = True
    reporter = _reporter(hub, clock, heartbeat=60, window=0.01, retry_cap=0.1)
    try:
        reporter.submit(report.Status(phase=Phase.READY))
        for second in range(360):
            reporter.record([_event(f"d{second}", DriftAction.DETECTED), _event(f"c{second}")])
        hub.down = False
        for _ in range(1_000):
            if reporter.pending_events == ():
                break
            clock.advance(0.1)
        delivered = [e.ref.name for s, _ in hub.sent for e in s.drift_events]
        assert delivered == [n for second in range(360) for n in (f"d{second}", f"c{second}")]
        assert reporter.dropped_events == 0
        assert max(len(s.drift_events) for s, _ in hub.sent) <= report.EVENTS_PER_REPORT
    finally:
        reporter.stop()
