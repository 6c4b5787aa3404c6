"""Per-peer token buckets and request field bounds."""

from __future__ import annotations

import pytest

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
