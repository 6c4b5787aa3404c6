"""Owner-only files that are created once and then reused.

Two hub processes may start on the same data directory at once (a restart overlapping the old
process, or two replicas on a shared volume), so a file is written to a private temporary name and
published with ``os.link``, which fails if another process got there first; the loser reads the
winner's content instead of overwriting it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["PrivateFileError", "ensure_private_dir", "read_private", "write_private", "write_private_once"]

log = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


class PrivateFileError(Exception):
    """A key or credential file cannot be read or written."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise PrivateFileError(path, f"cannot create directory: {exc.strerror}") from exc


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) owner-only whatever the umask, and tighten it if it exists.

    The hub's data directory holds the database (every bundle, the audit log), keys and credentials:
    no other user of the machine may list or read it.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            # mkdir's mode is filtered by the umask, and an existing directory keeps its mode.
            os.chmod(path, mode & ~0o077 | 0o700)
    except OSError as exc:
        raise PrivateFileError(path, f"cannot create an owner-only directory: {exc.strerror}") from exc


def read_private(path: Path) -> bytes:
    """Read a private file, tightening its mode to 0600 if someone loosened it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); restricting it to the owner", path, mode)
            try:
                os.chmod(path, PRIVATE_MODE)
            except OSError as exc:
                # A read-only mount (a Kubernetes Secret shared by hub replicas, whose mode the kubelet
                # sets from defaultMode and fsGroup) cannot be tightened; reading it is still right.
                log.warning("%s: cannot restrict its mode (%s); set the mount's mode instead", path, exc.strerror)
        return path.read_bytes()
    except OSError as exc:
        raise PrivateFileError(path, f"cannot read: {exc.strerror}") from exc


def write_private(path: Path, data: bytes) -> None:
    """Write (or replace) ``path`` atomically with mode 0600."""
    _ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise PrivateFileError(path, f"cannot write: {exc.strerror}") from exc


def write_private_once(path: Path, make: Callable[[], bytes]) -> tuple[bytes, bool]:
    """The content of ``path``, creating it from ``make()`` if it does not exist yet.

    Returns ``(content, created)``. ``make`` may run in two processes at once; only one result is
    published and both processes return it.
    """
    if path.exists():
        return read_private(path), False
    _ensure_dir(path.parent)
    data = make()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:
            created = False
    except OSError as exc:
        raise PrivateFileError(path, f"cannot write: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return (data, True) if created else (read_private(path), False)
