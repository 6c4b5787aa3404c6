"""Database access: one engine per hub process, one short session per unit of work.

SQLite (the embedded default) is tuned for a hub that writes from several threads:

* WAL journal, ``synchronous=NORMAL`` (durable across process crashes; a power cut may lose the last
  commits, which the next sync re-derives from Git), ``busy_timeout``, ``foreign_keys=ON``;
* the driver's own transaction handling is switched off and write sessions start with
  ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes fails at once with
  "database is locked" when another writer committed in between, whatever the busy timeout; taking
  the write lock up front makes writers queue instead. Read-only sessions (``session(write=False)``)
  keep a plain ``BEGIN`` and never wait for writers.

PostgreSQL is reached through psycopg 3 (``postgresql://`` URLs are accepted and mapped to it).
Migrations take an advisory lock there, so replicas starting together migrate once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlmodel import Session

from hub.store import errors

__all__ = ["MIGRATIONS_DIR", "Database", "default_sqlite_url", "normalize_url"]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: pg_advisory_xact_lock key held while migrating ("convoy" in ASCII).
_MIGRATION_LOCK_KEY = 0x636F6E766F79
_READ_ONLY = "convoy_read_only"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def default_sqlite_url(data_dir: Path) -> str:
    """The embedded database: ``sqlite:///<data_dir>/convoy.db`` (absolute path)."""
    return f"sqlite:///{(data_dir / 'convoy.db').resolve()}"


def normalize_url(url: str) -> URL:
    """Parse a database URL; plain ``postgresql://`` means psycopg 3, the driver the hub ships."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise errors.StoreError("database URL is not valid (expected sqlite:///PATH or "
                                "postgresql://USER@HOST:PORT/DB)") from exc
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise errors.StoreError(f"database {parsed.render_as_string(hide_password=True)}: only SQLite and "
                                "PostgreSQL are supported")
    return parsed


class Database:
    """The hub's database. Thread-safe: every thread takes its own session from :meth:`session`."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 30, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            database = self.url.database or ""
            if database in {"", ":memory:"} or database.startswith("file::memory:"):
                raise errors.StoreError("an in-memory SQLite database cannot be shared by the hub's threads or "
                                        "taken over by another process; give a file path")
            _private_sqlite_files(Path(database))
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            # No server-side prepared statements: psycopg prepares a query after its fifth run, and the generic
            # plan PostgreSQL then keeps for the connection was chosen for the tables as they were (a fresh
            # hub's empty desired_states: a sequential scan, O(clusters) per lookup batch, for as long as no
            # ANALYZE invalidates it; measured 33 ms instead of 1 ms per batch at 10,000 clusters). Planning
            # each query anew costs ~0.1 ms, and it also keeps the hub working behind pgbouncer in transaction mode.
            kwargs["connect_args"] = {"prepare_threshold": None}
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = max_overflow
        #: Why the last write failed for want of the database (locked past the busy timeout, disk full,
        #: server gone); "" until then and once :meth:`check_writable` succeeds again. /readyz reads it:
        #: a read-only ping succeeds while every write fails.
        self.write_failure = ""
        self.engine: Engine = sa.create_engine(self.url, **kwargs)
        self._read_engine: Engine = self.engine.execution_options(**{_READ_ONLY: True})
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs and messages."""
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    @contextlib.contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises.

        Store errors (:mod:`hub.store.errors`) raised inside pass through unchanged; SQLAlchemy and
        driver errors become :class:`~hub.store.errors.StoreError` (``StoreUnavailable`` for lost
        connections and lock timeouts) with the cause chained. ``write=False`` marks a read-only unit,
        which on SQLite never waits for writers.
        """
        session = Session(self.engine if write else self._read_engine, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except sa_exc.SQLAlchemyError as exc:
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                session.rollback()
            translated = self._translate(exc)
            if write and isinstance(translated, errors.StoreUnavailable):
                self.write_failure = str(translated)
            raise translated from exc
        except BaseException:
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                session.rollback()
            raise
        finally:
            session.close()

    def _translate(self, exc: sa_exc.SQLAlchemyError) -> errors.StoreError:
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError):
            return errors.StoreUnavailable(f"database {self.display_url}: {_reason(exc)}")
        return errors.StoreError(f"database {self.display_url}: {_reason(exc)}")

    def ping(self) -> None:
        """Raise :class:`~hub.store.errors.StoreUnavailable` unless the database answers."""
        try:
            with self._read_engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa_exc.SQLAlchemyError as exc:
            raise self._translate(exc) from exc

    def check_writable(self, *, timeout: float = 1.0) -> None:
        """After a failed write: raise :class:`~hub.store.errors.StoreUnavailable` unless a write succeeds now.

        Without a recorded failure this is :meth:`ping`. The probe rewrites one hub_state row in its own
        connection; on SQLite it waits at most ``timeout`` seconds for the write lock, not the busy timeout.
        """
        if not self.write_failure:
            self.ping()
            return
        probe = sa.text("UPDATE hub_state SET updated_at = updated_at WHERE key = 'readyz-probe'")
        try:
            if self.is_sqlite:
                with contextlib.closing(sqlite3.connect(self.url.database or "", timeout=timeout,
                                                        isolation_level=None)) as conn:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("INSERT OR REPLACE INTO hub_state (key, value, updated_at) "
                                 "VALUES ('readyz-probe', '', CURRENT_TIMESTAMP)")
                    conn.execute("COMMIT")
            else:
                with self.engine.begin() as conn:
                    conn.execute(probe)
        except sqlite3.Error as exc:
            raise errors.StoreUnavailable(f"database {self.display_url}: cannot write: {exc}") from exc
        except sa_exc.SQLAlchemyError as exc:
            raise self._translate(exc) from exc
        self.write_failure = ""

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent; safe to run at every start)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except errors.StoreError:
            raise
        except sa_exc.SQLAlchemyError as exc:
            raise errors.MigrationError(f"database {self.display_url}: migration failed: {_reason(exc)}") from exc
        except Exception as exc:  # Alembic raises its own CommandError and plain exceptions from scripts
            raise errors.MigrationError(f"database {self.display_url}: migration failed: {exc}") from exc

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        try:
            with self.engine.connect() as conn:
                revision: str | None = MigrationContext.configure(conn).get_current_revision()
                return revision
        except sa_exc.SQLAlchemyError as exc:
            raise self._translate(exc) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _reason(exc: sa_exc.SQLAlchemyError) -> str:
    # The driver's own message, without SQLAlchemy's statement and parameter dump (which may hold hashes).
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


#: Files SQLite keeps beside the database; it creates them with the database file's permissions.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _private_sqlite_files(database: Path) -> None:
    """Make the database file owner-only (0600) whatever the umask, before SQLite opens it.

    The database holds every rendered bundle and the audit log. SQLite creates its -wal, -shm and
    -journal files with the database file's mode, so creating that file 0600 up front covers them;
    files a looser earlier version left behind are tightened.
    """
    try:
        database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        for path in (database, *(database.with_name(database.name + s) for s in _SQLITE_COMPANIONS)):
            with contextlib.suppress(FileNotFoundError):
                mode = stat.S_IMODE(path.stat().st_mode)
                if mode & 0o077:
                    os.chmod(path, mode & 0o700)
    except OSError as exc:
        raise errors.StoreError(f"database {database}: cannot create it owner-only: {exc.strerror}") from exc


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # Hand transaction control to SQLAlchemy (see _sqlite_on_begin); pysqlite would otherwise BEGIN
    # lazily and DEFERRED.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")
