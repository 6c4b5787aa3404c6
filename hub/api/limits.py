"""Bounds on what a peer may send: per-peer token buckets and field limits for requests.

Pure code (no grpc): the servicers call :meth:`RateLimiter.allow` with the
peer's address and :func:`check_report` / :func:`check_registration` before
touching the store; both raise :class:`RequestRejected` subclasses that the
status table in :mod:`hub.api.grpc_errors` turns into gRPC codes.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from google.protobuf import timestamp_pb2

from protos import codec, selectors
from protos.codec import pb
from protos.status import DriftAction

__all__ = [
    "MAX_MESSAGE_BYTES",
    "InvalidRequest",
    "LogThrottle",
    "RateLimited",
    "RateLimiter",
    "ReportLimits",
    "RequestRejected",
    "check_digest",
    "check_drift_events",
    "check_labels",
    "check_registration",
    "check_report",
    "check_text",
    "check_timestamp",
    "peer_host",
]

#: Largest request the hub accepts (the gRPC server's max_receive_message_length).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
COMMIT_RE = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64})?")
#: Characters of spoke_version (the column's width: a longer one would fail the batch it is stored in).
MAX_SPOKE_VERSION = 64
#: Characters of each part of an object reference (253 is a DNS subdomain, the longest Kubernetes name).
MAX_REF_TEXT = 512


class RequestRejected(Exception):
    """A request the hub will not process; the message says what to change."""


class InvalidRequest(RequestRejected):
    """A field is missing, malformed or too large."""


class RateLimited(RequestRejected):
    """The peer sent more requests than its bucket allows."""


@dataclasses.dataclass(frozen=True)
class ReportLimits:
    """Field bounds of one StatusReport (the whole message is also capped by MAX_MESSAGE_BYTES)."""

    max_objects: int = 20_000     #: per-object results in one report
    max_drift: int = 5_000        #: drift items in one report
    max_errors: int = 200         #: error strings in one report
    max_text: int = 8_192         #: characters in any one free-text field
    max_drift_events: int = 1_000  #: drift detections/corrections in one report (a spoke sends at most 500)


class RateLimiter:
    """A token bucket per peer: ``rate`` requests per second sustained, bursts of ``burst``.

    Peers are forgotten least-recently-used first beyond ``max_peers`` so a scan from many
    addresses cannot grow the table without bound.
    """

    def __init__(self, *, rate: float, burst: int, max_peers: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate limit needs rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self.max_peers = max_peers
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, peer: str) -> bool:
        """Take one token from ``peer``'s bucket; False when it is empty."""
        now = self._clock()
        tokens, last = self._buckets.pop(peer, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[peer] = (tokens, now)
        while len(self._buckets) > self.max_peers:
            self._buckets.popitem(last=False)
        return allowed

    def peek(self, peer: str) -> bool:
        """Whether ``peer``'s bucket holds a token now (none is taken)."""
        found = self._buckets.get(peer)
        if found is None:
            return True
        tokens, last = found
        return min(float(self.burst), tokens + (self._clock() - last) * self.rate) >= 1.0

    def check(self, peer: str, what: str) -> None:
        if not self.allow(peer):
            raise RateLimited(f"{what} from {peer}: more than {self.burst} requests in a burst "
                              f"({self.rate:g}/s sustained); retry later")


class LogThrottle:
    """At most one log line per key (a peer, say) per ``interval`` seconds, counting what it held back.

    Keys are forgotten least-recently-used first beyond ``max_keys``.
    """

    def __init__(self, *, interval: float, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str) -> int | None:
        """None: stay quiet this time; else log now, mentioning the returned count held back since."""
        now = self._clock()
        found = self._last.pop(key, None)
        if found is not None and now - found[0] < self.interval:
            self._last[key] = (found[0], found[1] + 1)
            return None
        self._last[key] = (now, 0)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return found[1] if found is not None else 0


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string (``ipv4:1.2.3.4:5678`` -> ``ipv4:1.2.3.4``).

    The port changes per connection, so buckets are keyed by host.
    """
    if peer.startswith("ipv6:"):
        body = peer[len("ipv6:"):]
        if body.startswith("[") and "]" in body:
            return "ipv6:" + body[1:body.index("]")]
        return "ipv6:" + body.rsplit(":", 1)[0]
    if peer.startswith("ipv4:"):
        return peer.rsplit(":", 1)[0]
    return peer


def check_labels(labels: Mapping[str, str], *, where: str) -> None:
    """Kubernetes label syntax for keys and values."""
    if len(labels) > 64:
        raise InvalidRequest(f"{where}: at most 64 labels, got {len(labels)}")
    for key, value in labels.items():
        try:
            selectors.check_label(key, value, where=where)
        except selectors.SelectorError as exc:
            raise InvalidRequest(str(exc)) from None


def check_registration(*, cluster_name: str, labels: Mapping[str, str], token: str) -> None:
    if not token:
        raise InvalidRequest("register: bootstrap_token is empty")
    if len(token) > 512:
        raise InvalidRequest("register: bootstrap_token is longer than 512 characters")
    if not _DNS_LABEL.fullmatch(cluster_name):
        raise InvalidRequest(f"register: cluster name {cluster_name!r} must be a DNS label "
                             "(lowercase letters, digits and '-', at most 63 characters)")
    check_labels(labels, where=f"cluster {cluster_name}")


def check_digest(digest: str, *, where: str, allow_empty: bool = False) -> None:
    if allow_empty and not digest:
        return
    if not DIGEST_RE.fullmatch(digest):
        raise InvalidRequest(f"{where}: digest {digest[:80]!r} is not of the form sha256:<64 hex>")


def check_text(value: str, *, field: str, where: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidRequest(f"{where}: {field} is {len(value)} characters, more than the {limit} allowed")
    if "\x00" in value:
        # PostgreSQL stores no NUL in text or JSON: caught here, it cannot fail the batch it is written in.
        raise InvalidRequest(f"{where}: {field} contains a NUL character")


def check_timestamp(stamp: timestamp_pb2.Timestamp, *, field: str, where: str) -> None:
    """A Timestamp the hub can store: unset, or a real instant between years 1 and 9999."""
    try:
        codec.datetime_from_wire(stamp)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(f"{where}: {field} is not a valid timestamp (seconds={stamp.seconds}, "
                             f"nanos={stamp.nanos})") from exc
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise InvalidRequest(f"{where}: {field} has nanos={stamp.nanos}, outside [0, 1e9)")


def _check_ref(ref: pb.ObjectRef, *, field: str, where: str) -> None:
    for part in ("group", "kind", "namespace", "name"):
        check_text(getattr(ref, part), field=f"{field}.{part}", where=where, limit=MAX_REF_TEXT)


def check_report(report: pb.StatusReport, limits: ReportLimits, *, cluster: str) -> None:
    """Field checks of a StatusReport beyond what the wire format enforces."""
    where = f"status report from cluster {cluster}"
    if report.phase not in codec.PHASE_FROM_WIRE:
        raise InvalidRequest(f"{where}: unknown phase {report.phase}")
    check_digest(report.applied_digest, where=where, allow_empty=True)
    if not COMMIT_RE.fullmatch(report.applied_commit):
        raise InvalidRequest(f"{where}: applied_commit {report.applied_commit[:80]!r} is not a commit id")
    for name, count, limit in (("objects", len(report.objects), limits.max_objects),
                               ("drift", len(report.drift), limits.max_drift),
                               ("errors", len(report.errors), limits.max_errors)):
        if count > limit:
            raise InvalidRequest(f"{where}: {count} {name}, more than the {limit} allowed")
    check_text(report.message, field="message", where=where, limit=limits.max_text)
    check_text(report.spoke_version, field="spoke_version", where=where, limit=MAX_SPOKE_VERSION)
    check_timestamp(report.observed_at, field="observed_at", where=where)
    if report.backlog < 0:
        raise InvalidRequest(f"{where}: backlog must not be negative")
    for error in report.errors:
        check_text(error, field="an error", where=where, limit=limits.max_text)
    for result in report.objects:
        _check_ref(result.ref, field="objects[].ref", where=where)
        for field in ("app", "action", "health", "reason", "error"):
            check_text(getattr(result, field), field=f"objects[].{field}", where=where, limit=limits.max_text)
    for item in report.drift:
        _check_ref(item.ref, field="drift[].ref", where=where)
        check_text(item.app, field="drift[].app", where=where, limit=limits.max_text)
        check_text(item.kind_of_drift, field="drift[].kind_of_drift", where=where, limit=limits.max_text)
        check_timestamp(item.detected_at, field="drift[].detected_at", where=where)
        if len(item.fields) > 1_000:
            raise InvalidRequest(f"{where}: drift of {codec.ref_from_wire(item.ref)} lists "
                                 f"{len(item.fields)} fields, more than 1000")
        for drift_field in item.fields:
            for field in ("path", "desired", "live"):
                check_text(getattr(drift_field, field), field=f"drift[].fields[].{field}", where=where,
                           limit=limits.max_text)
    check_drift_events(report, limits, where=where)


#: What one drift item or event may list: fields (as the drift items' bound) and field managers.
MAX_DRIFT_FIELDS = 1_000
MAX_DRIFT_MANAGERS = 32
_DRIFT_KINDS = frozenset({"modified", "deleted"})
_DRIFT_ACTIONS = frozenset(a.value for a in DriftAction)


def check_drift_events(report: pb.StatusReport, limits: ReportLimits, *, where: str) -> None:
    """Bounds and vocabularies of ``drift_events`` and of the drift items' ``managers``."""
    if len(report.drift_events) > limits.max_drift_events:
        raise InvalidRequest(f"{where}: {len(report.drift_events)} drift events, more than the "
                             f"{limits.max_drift_events} allowed")
    for item in report.drift:
        _check_managers(item.managers, where=f"{where}: drift of {codec.ref_from_wire(item.ref)}")
    for event in report.drift_events:
        what = f"{where}: drift event on {codec.ref_from_wire(event.ref)}"
        if event.action not in _DRIFT_ACTIONS:
            raise InvalidRequest(f"{what}: unknown action {event.action[:40]!r} (one of "
                                 f"{', '.join(DriftAction)})")
        if event.kind_of_drift not in _DRIFT_KINDS:
            raise InvalidRequest(f"{what}: unknown kind_of_drift {event.kind_of_drift[:40]!r}")
        if len(event.fields) > MAX_DRIFT_FIELDS:
            raise InvalidRequest(f"{what}: {len(event.fields)} fields, more than {MAX_DRIFT_FIELDS}")
        for name in ("group", "kind", "namespace", "name"):
            check_text(getattr(event.ref, name), field=f"drift_events[].ref.{name}", where=where, limit=253)
        check_text(event.app, field="drift_events[].app", where=where, limit=253)
        check_text(event.message, field="drift_events[].message", where=where, limit=limits.max_text)
        check_timestamp(event.at, field="drift_events[].at", where=what)
        for drift_field in event.fields:
            for field in ("path", "desired", "live"):
                check_text(getattr(drift_field, field), field=f"drift_events[].fields[].{field}", where=where,
                           limit=limits.max_text)
        _check_managers(event.managers, where=what)


def _check_managers(managers: Sequence[str], *, where: str) -> None:
    if len(managers) > MAX_DRIFT_MANAGERS:
        raise InvalidRequest(f"{where}: {len(managers)} field managers, more than {MAX_DRIFT_MANAGERS}")
    for manager in managers:
        # Kubernetes caps a field manager's name at 128 characters.
        check_text(manager, field="a field manager", where=where, limit=128)
