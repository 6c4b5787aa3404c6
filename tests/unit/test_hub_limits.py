"""Per-peer token buckets and request field bounds."""

from __future__ import annotations

import re
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from hub.api import limits
from protos.codec import pb


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = limits.RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.allow("p") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("q")  # another peer has its own bucket
    clock.now += 0.5  # one token back at 2/s
    assert limiter.allow("p") and not limiter.allow("p")
    clock.now += 100  # refills only up to the burst
    assert [limiter.allow("p") for _ in range(4)] == [True, True, True, False]


def test_check_raises_rate_limited_naming_the_peer() -> None:
    limiter = limits.RateLimiter(rate=1.0, burst=1, clock=Clock())
    limiter.check("ipv4:10.0.0.1", "register")
    with pytest.raises(limits.RateLimited, match=r"register from ipv4:10\.0\.0\.1"):
        limiter.check("ipv4:10.0.0.1", "register")


def test_peer_table_is_bounded() -> None:
    limiter = limits.RateLimiter(rate=1.0, burst=1, max_peers=10, clock=Clock())
    for i in range(100):
        limiter.allow(f"peer-{i}")
    assert len(limiter._buckets) == 10


@pytest.mark.parametrize(("peer", "host"), [
    ("ipv4:127.0.0.1:5555", "ipv4:127.0.0.1"),
    ("ipv6:[::1]:5555", "ipv6:::1"),
    ("unix:/tmp/sock", "unix:/tmp/sock"),
])
def test_peer_host_drops_the_port(peer: str, host: str) -> None:
    assert limits.peer_host(peer) == host


def test_registration_checks() -> None:
    limits.check_registration(cluster_name="prod-eu-1", labels={"env": "prod", "convoy.dev/tier": "a"}, token="t")
    with pytest.raises(limits.InvalidRequest, match="DNS label"):
        limits.check_registration(cluster_name="Prod_EU", labels={}, token="t")
    with pytest.raises(limits.InvalidRequest, match="bootstrap_token is empty"):
        limits.check_registration(cluster_name="a", labels={}, token="")
    with pytest.raises(limits.InvalidRequest, match="label key"):
        limits.check_registration(cluster_name="a", labels={"bad key": "x"}, token="t")
    with pytest.raises(limits.InvalidRequest, match="value"):
        limits.check_registration(cluster_name="a", labels={"env": "x" * 64}, token="t")


def test_report_checks() -> None:
    bounds = limits.ReportLimits(max_objects=2, max_text=10)
    good = pb.StatusReport(phase=pb.PHASE_READY, applied_commit="a" * 40, applied_digest="sha256:" + "0" * 64)
    limits.check_report(good, bounds, cluster="c1")
    with pytest.raises(limits.InvalidRequest, match="status report from cluster c1: unknown phase"):
        limits.check_report(pb.StatusReport(phase=99), bounds, cluster="c1")
    with pytest.raises(limits.InvalidRequest, match="digest"):
        limits.check_report(pb.StatusReport(applied_digest="md5:x"), bounds, cluster="c1")
    with pytest.raises(limits.InvalidRequest, match="3 objects"):
        limits.check_report(pb.StatusReport(objects=[pb.ObjectResult()] * 3), bounds, cluster="c1")
    with pytest.raises(limits.InvalidRequest, match="message is 11 characters"):
        limits.check_report(pb.StatusReport(message="x" * 11), bounds, cluster="c1")


def test_peek_looks_without_taking() -> None:
    clock = Clock()
    limiter = limits.RateLimiter(rate=1.0, burst=2, clock=clock)
    assert limiter.peek("p") and limiter.peek("p")  # looking takes nothing
    assert limiter.allow("p") and limiter.allow("p")
    assert not limiter.peek("p")
    clock.now += 1.0
    assert limiter.peek("p")


def test_log_throttle_says_once_per_interval_and_counts_the_rest() -> None:
    clock = Clock()
    throttle = limits.LogThrottle(interval=60.0, clock=clock)
    assert throttle.allow("p") == 0
    assert [throttle.allow("p") for _ in range(5)] == [None] * 5
    assert throttle.allow("q") == 0  # each peer its own
    clock.now += 61
    assert throttle.allow("p") == 5


def _stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


@pytest.mark.parametrize(("fields", "problem"), [
    ({"observed_at": _stamp(253402300800 + 86400)}, "observed_at is not a valid timestamp"),
    ({"observed_at": _stamp(5, -1)}, "observed_at"),
    ({"drift": [pb.DriftItem(detected_at=_stamp(-62135596800 - 86400))]}, "drift[].detected_at"),
    ({"message": "a\x00b"}, "message contains a NUL"),
    ({"errors": ["\x00"]}, "an error contains a NUL"),
    ({"objects": [pb.ObjectResult(ref=pb.ObjectRef(name="x\x00"))]}, "objects[].ref.name contains a NUL"),
    ({"objects": [pb.ObjectResult(ref=pb.ObjectRef(kind="K" * 600))]}, "objects[].ref.kind is 600 characters"),
    ({"drift": [pb.DriftItem(app="\x00")]}, "drift[].app contains a NUL"),
    ({"spoke_version": "v" * 65}, "spoke_version is 65 characters"),
])
def test_report_fields_the_store_cannot_take_are_refused_at_the_edge(fields: dict[str, Any], problem: str) -> None:
    report = pb.StatusReport(phase=pb.PHASE_READY, **fields)
    with pytest.raises(limits.InvalidRequest, match=re.escape(problem)):
        limits.check_report(report, limits.ReportLimits(), cluster="c")
