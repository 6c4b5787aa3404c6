"""Several hub replicas on one PostgreSQL: wake-ups between them, one leader, and SQLite's refusal.

* :class:`ChangeFeed` — LISTEN/NOTIFY on channel ``convoy_changes``. Each replica publishes which
  clusters changed (or were revoked, or that a sync was asked for) and applies what the others
  publish. The listening connection is dedicated; when it drops, the replica reconnects and then
  reports ``("resync", [])`` to its handler, because notifications sent meanwhile are lost: the
  caller wakes every stream so each re-reads the database instead of trusting memory.
* :class:`LeaderLease` — ``pg_try_advisory_lock`` held on a dedicated connection. The lease dies
  with the session (process killed, connection cut), so no home-made consensus or expiry clock:
  PostgreSQL decides. The leader runs the singleton work (Git fetch, rendering, rollout ticks).
* :class:`SqliteReplicaLock` — SQLite serves one replica: an exclusive ``flock`` on a file next to
  the database makes a second hub on the same file refuse to start with a clear message.
* :class:`ReplicaRecord` — each replica's heartbeat row in ``hub_state`` (key ``replica:<id>``): its
  address, start, last heartbeat and open Watch streams, which ``convoy status`` lists. A row whose
  heartbeat is three intervals old is shown as gone (a replica killed with SIGKILL writes nothing);
  gone rows are forgotten after :data:`FORGET_GONE_AFTER`.
* Handed-over syncs: a ``convoy sync`` received by a follower is published as ``sync-now`` with a
  request id; the leader runs it and stores the outcome under ``sync-result:<id>``, which the follower
  reads back (:func:`put_sync_result`, :func:`take_sync_result`).

Everything here blocks; each class runs its own thread and calls back through the event loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import conninfo as pg_conninfo
from sqlalchemy.engine import URL
from sqlmodel import Session

from hub.store import errors
from hub.store import repository as store

__all__ = ["CHANNEL", "ChangeFeed", "LeaderLease", "ReplicaRecord", "SqliteReplicaLock", "leader_of", "new_replica_id",
           "put_sync_result", "record_heartbeat", "replica_records", "take_sync_result"]

log = logging.getLogger(__name__)

CHANNEL = "convoy_changes"
#: application_name of each replica's listening connection (operators count replicas by it).
LISTENER_APPLICATION = "convoy-replica-feed"
#: pg_advisory_lock key of the leader lease ("convoyL" in ASCII); distinct from the migration lock.
LEADER_LOCK_KEY = 0x636F6E766F794C
#: NOTIFY payloads are limited to 8,000 bytes; longer name lists are split.
_PAYLOAD_BUDGET = 7000
#: Above this many names one "every cluster" message is cheaper than many payloads.
_ALL = "*"
RETRY_SECONDS = 1.0

Handler = Callable[[str, list[str]], None]


def new_replica_id() -> str:
    """A name for this replica in logs and in ``convoy status``: host and a short random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _conninfo(url: URL) -> str:
    """libpq connection string with TCP keepalives and a user timeout: a partition (packets dropped,
    no reset) must end the feed and the lease in seconds, not after the kernel's two hours."""
    base = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return pg_conninfo.make_conninfo(base, keepalives=1, keepalives_idle=5, keepalives_interval=2,
                                          keepalives_count=2, tcp_user_timeout=10000)


def _chunks(names: list[str]) -> list[list[str]]:
    out: list[list[str]] = []
    current: list[str] = []
    size = 0
    for name in names:
        if current and size + len(name) + 4 > _PAYLOAD_BUDGET:
            out.append(current)
            current, size = [], 0
        current.append(name)
        size += len(name) + 4
    if current:
        out.append(current)
    return out


class ChangeFeed:
    """Publish and receive ``(kind, cluster names)`` between replicas over LISTEN/NOTIFY."""

    def __init__(self, url: URL, *, replica: str, handler: Handler) -> None:
        self._conninfo = _conninfo(url)
        self._replica = replica
        self._handler = handler
        self._outbox: queue.Queue[tuple[str, list[str]] | None] = queue.Queue()
        self._stopping = threading.Event()
        self.listening = threading.Event()
        self._threads = [threading.Thread(target=self._listen, name="convoy-feed-listen", daemon=True),
                         threading.Thread(target=self._send, name="convoy-feed-send", daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._outbox.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)

    def publish(self, kind: str, names: list[str]) -> None:
        """Queue a message for the other replicas (never blocks the caller)."""
        self._outbox.put((kind, names))

    # -- threads ---------------------------------------------------------------------------------
    def _send(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stopping.is_set():
            item = self._outbox.get()
            if item is None:
                break
            kind, names = item
            payloads = [json.dumps({"from": self._replica, "kind": kind, "names": chunk})
                        for chunk in (_chunks(names) if names else [[]])]
            while not self._stopping.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                    for payload in payloads:
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                    break
                except psycopg.Error as exc:
                    # Receivers that miss this re-read the database when their own connection
                    # comes back; retrying here keeps the wake-up latency low when it does not drop.
                    log.warning("cannot notify other replicas (%s); retrying", type(exc).__name__)
                    with contextlib.suppress(psycopg.Error):
                        if conn is not None:
                            conn.close()
                    conn = None
                    self._stopping.wait(RETRY_SECONDS)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _listen(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5,
                                     application_name=LISTENER_APPLICATION) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    if not first:
                        log.info("listening to other replicas again; every stream re-reads the database")
                        self._handler("resync", [])
                    first = False
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(note.payload)
                        conn.execute("SELECT 1")  # notice a dead connection even when nothing is sent
            except psycopg.Error as exc:
                if self.listening.is_set():
                    self._handler("detached", [])
                self.listening.clear()
                if not self._stopping.is_set():
                    log.warning("lost the connection that hears other replicas (%s); reconnecting",
                                type(exc).__name__)
                    self._stopping.wait(RETRY_SECONDS)
        self.listening.clear()

    def _deliver(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message.get("from") == self._replica:
                return
            kind, names = str(message["kind"]), [str(n) for n in message.get("names", [])]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed message on %s", CHANNEL)
            return
        self._handler(kind, names)


class LeaderLease:
    """Hold the leader advisory lock on a dedicated connection; :attr:`is_leader` says if we do."""

    def __init__(self, url: URL, *, replica: str, on_change: Callable[[bool], None]) -> None:
        self._conninfo = _conninfo(url)
        self._replica = replica
        self._on_change = on_change
        self._stopping = threading.Event()
        self.is_leader = False
        self._thread = threading.Thread(target=self._run, name="convoy-leader-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _set(self, leader: bool) -> None:
        if leader != self.is_leader:
            self.is_leader = leader
            log.info("replica %s %s", self._replica, "is now the leader" if leader else "is no longer the leader")
            self._on_change(leader)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    while not self._stopping.is_set():
                        if not self.is_leader:
                            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
                            if row is not None and row[0]:
                                conn.execute("SELECT set_config('application_name', %s, false)",
                                             (f"convoy-leader {self._replica}"[:63],))
                                self._set(True)
                        else:
                            conn.execute("SELECT 1")  # the lease lives as long as this session does
                        self._stopping.wait(RETRY_SECONDS)
                    if self.is_leader:
                        with contextlib.suppress(psycopg.Error):
                            conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_KEY,))
            except psycopg.Error as exc:
                if self.is_leader:
                    log.warning("lost the leader lease's connection (%s); stepping down", type(exc).__name__)
                self._set(False)
                self._stopping.wait(RETRY_SECONDS)
        self._set(False)


def current_leader(url: URL) -> str:
    """The replica holding the leader lease, from ``pg_stat_activity`` ("" if none)."""
    with psycopg.connect(_conninfo(url), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND "
            "((l.classid::bigint << 32) | l.objid::bigint) = %s", (LEADER_LOCK_KEY,)).fetchone()
    name = str(row[0]) if row else ""
    return name.removeprefix("convoy-leader ")


class SqliteReplicaLock:
    """An exclusive lock on ``<database>.replica-lock``: one hub per SQLite file."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".replica-lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise errors.StoreError(
                f"database {self.path.with_suffix('')}: already used by another hub replica ({holder}); "
                "SQLite serves one replica; run several replicas on PostgreSQL (--database-url)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


#: hub_state key prefixes of heartbeat rows and of handed-over sync results.
REPLICA_PREFIX = "replica:"
SYNC_RESULT_PREFIX = "sync-result:"
#: A replica whose heartbeat is this many intervals old is gone (killed, cut off, or stopped).
MISSED_HEARTBEATS = 3
#: Gone replicas stay listed this long (an operator sees which one died), then their row is deleted.
FORGET_GONE_AFTER = dt.timedelta(minutes=15)
#: Sync results nobody collected (the asking replica died) are deleted after this.
FORGET_SYNC_RESULT_AFTER = dt.timedelta(hours=1)
_LEADER_PREFIX = "convoy-leader "
_KEY_CHARS = 128  # hub_state.key


@dataclasses.dataclass(frozen=True)
class ReplicaRecord:
    """One replica's last heartbeat, as stored and as ``convoy status`` shows it."""

    replica: str                 #: the full id the leader lease names (``name (address)``)
    name: str
    address: str
    started: dt.datetime
    heartbeat: dt.datetime
    interval: float              #: seconds between this replica's heartbeats
    streams: int                 #: Watch streams open on it at the heartbeat
    stopped: bool = False        #: it stopped cleanly (its last write)

    def gone(self, now: dt.datetime) -> bool:
        return self.stopped or now - self.heartbeat > dt.timedelta(seconds=MISSED_HEARTBEATS * self.interval)

    def to_json(self) -> str:
        return json.dumps({"replica": self.replica, "name": self.name, "address": self.address,
                           "started": self.started.isoformat(), "heartbeat": self.heartbeat.isoformat(),
                           "interval": self.interval, "streams": self.streams, "stopped": self.stopped})

    @classmethod
    def from_json(cls, text: str) -> ReplicaRecord:
        doc = json.loads(text)
        return cls(replica=str(doc["replica"]), name=str(doc["name"]), address=str(doc["address"]),
                   started=dt.datetime.fromisoformat(doc["started"]),
                   heartbeat=dt.datetime.fromisoformat(doc["heartbeat"]), interval=float(doc["interval"]),
                   streams=int(doc["streams"]), stopped=bool(doc.get("stopped", False)))


def record_heartbeat(session: Session, record: ReplicaRecord) -> None:
    store.set_state(session, (REPLICA_PREFIX + record.replica)[:_KEY_CHARS], record.to_json(), now=record.heartbeat)


def replica_records(session: Session, *, now: dt.datetime, forget: bool = False) -> list[ReplicaRecord]:
    """Every recorded replica, oldest start first; ``forget`` deletes rows gone longer than the bound."""
    records: list[ReplicaRecord] = []
    stale: list[str] = []
    for row in store.states_with_prefix(session, REPLICA_PREFIX):
        try:
            record = ReplicaRecord.from_json(row.value)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed replica heartbeat row %s", row.key)
            continue
        if record.gone(now) and now - record.heartbeat > FORGET_GONE_AFTER:
            stale.append(row.key)
            continue
        records.append(record)
    if forget:
        store.delete_states(session, stale)
    return sorted(records, key=lambda r: (r.started, r.replica))


def leader_of(session: Session, records: list[ReplicaRecord]) -> str:
    """The ``replica`` id of the record whose process holds the leader lease ("" if none or not PostgreSQL)."""
    row = session.connection().execute(sa.text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND "
        "((l.classid::bigint << 32) | l.objid::bigint) = :key"), {"key": LEADER_LOCK_KEY}).first()
    if row is None:
        return ""
    holder = str(row[0])
    # application_name is cut at 63 characters: compare it the same way.
    return next((r.replica for r in records if f"{_LEADER_PREFIX}{r.replica}"[:63] == holder), "")


def put_sync_result(session: Session, request_id: str, document: dict[str, object], *, now: dt.datetime) -> None:
    """The leader's answer to a handed-over sync; also forgets answers nobody collected."""
    store.set_state(session, SYNC_RESULT_PREFIX + request_id, json.dumps(document), now=now)
    old = [row.key for row in store.states_with_prefix(session, SYNC_RESULT_PREFIX)
           if now - _aware(row.updated_at) > FORGET_SYNC_RESULT_AFTER]
    store.delete_states(session, old)


def take_sync_result(session: Session, request_id: str) -> dict[str, object] | None:
    """The leader's answer to ``request_id`` (deleted once read), or None while there is none."""
    key = SYNC_RESULT_PREFIX + request_id
    value = store.get_state(session, key)
    if value is None:
        return None
    store.delete_states(session, [key])
    document: dict[str, object] = json.loads(value)
    return document


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
