"""Sandboxing: run an external build where it can read only the vetted files and reach nothing.

What a commit author could otherwise get from the hub through ``kustomize`` (or helm,
when the operator allows it) is closed off here, as defence behind :mod:`vetting`:

* **files** — the tool runs on a fresh temporary copy of exactly the vetted files
  (:func:`write_tree`), with ``--load-restrictor LoadRestrictionsRootOnly``;
* **credentials** — the environment is rebuilt from nothing (:func:`environment`): an
  empty HOME inside the sandbox, a minimal PATH, no SSH agent, no ``GIT_*``, no
  KUBECONFIG, no cloud credentials;
* **network** — every proxy variable points at a closed loopback port, so a client
  that honours them fails at once; where unprivileged network namespaces work
  (``unshare --net --map-root-user``) the tool runs in one with no interfaces but
  loopback (:func:`isolation_prefix`); the hub never needs root for this;
* **resources** — a wall-clock limit (the whole process group is killed), an address
  space limit (``RLIMIT_AS``) and a cap on the output read (:func:`run_bounded`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pathlib
import resource
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["BLACKHOLE_PROXY", "Completed", "Limits", "SandboxError", "environment", "isolation_prefix",
           "run_bounded", "write_tree"]

#: Where every proxy variable points: a loopback port nothing listens on (discard), so a request fails fast.
BLACKHOLE_PROXY = "http://127.0.0.1:9"
_MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
_CHUNK = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one external build."""

    timeout_seconds: float = 120.0                #: wall clock; the process group is killed after it
    memory_bytes: int = 2 * 1024 * 1024 * 1024    #: RLIMIT_AS (Go tools need ~1 GiB of address space to start)
    output_bytes: int = 64 * 1024 * 1024          #: stdout read at most; more fails the build
    stderr_bytes: int = 64 * 1024                 #: stderr kept for the error message


class SandboxError(Exception):
    """The tool could not run, ran out of time, or wrote too much."""


@dataclasses.dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


def write_tree(files: Mapping[str, bytes], dest: pathlib.Path) -> None:
    """Write ``files`` (repository path -> content) under ``dest``: regular files only, no links."""
    for path, data in files.items():
        target = dest.joinpath(*path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def environment(home: pathlib.Path, tmp: pathlib.Path) -> dict[str, str]:
    """A child environment built from nothing: no inherited secret can reach the tool."""
    env = {
        "PATH": _MINIMAL_PATH,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "KUBECONFIG": os.devnull,
        # Git (kustomize's remote bases shell out to it): no config, no prompt, no SSH.
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": "false",
        "GIT_ALLOW_PROTOCOL": "file",
        "NO_PROXY": "",
        "no_proxy": "",
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = BLACKHOLE_PROXY
    return env


@functools.cache
def isolation_prefix() -> tuple[str, ...]:
    """``unshare`` arguments that put a command in an empty network namespace, or ``()`` where that fails.

    Probed once: user namespaces may be disabled (containers, hardened kernels), and the hub must
    work there too, with the proxy variables and the up-front URL refusal as its protection.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    prefix = (unshare, "--net", "--map-root-user", "--")
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False,
                               env={"PATH": _MINIMAL_PATH})
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if probe.returncode == 0 else ()


def _limit_memory(memory_bytes: int) -> None:  # pragma: no cover - runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # No core dumps of a tool that held the commit's files.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limited(argv: Sequence[str], memory_bytes: int) -> tuple[list[str], Any]:
    """``argv`` under the memory limit, and the ``preexec_fn`` it still needs (None when ``prlimit`` sets it).

    util-linux's ``prlimit`` is preferred: a ``preexec_fn`` makes Python fork instead of vfork, and
    forking the hub runs gRPC's fork handlers, which can abort the child while other threads are
    inside gRPC (seen: "Check failed: next_worker->state == KICKED"), so the build never runs.
    """
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return list(argv), functools.partial(_limit_memory, memory_bytes)
    return [prlimit, f"--as={memory_bytes}", "--core=0", "--", *argv], None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the tool and whatever it started (helm)


def run_bounded(argv: Sequence[str], *, cwd: pathlib.Path, env: Mapping[str, str], limits: Limits) -> Completed:
    """Run ``argv`` with ``limits``; raises :class:`SandboxError` on timeout, too much output, or no start."""
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        command, preexec = _limited(argv, limits.memory_bytes)
        proc = subprocess.Popen(command, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=preexec)
    except OSError as exc:
        raise SandboxError(f"could not start: {exc.strerror or exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, out)
            selector.register(proc.stderr, selectors.EVENT_READ, err)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SandboxError(f"took longer than {limits.timeout_seconds:g} s; stopped")
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buffer: bytearray = key.data
                    if buffer is out:
                        out += chunk
                        if len(out) > limits.output_bytes:
                            raise SandboxError(f"wrote more than {limits.output_bytes} bytes; stopped")
                    elif len(err) < limits.stderr_bytes:
                        err += chunk[:limits.stderr_bytes - len(err)]
        try:
            returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"took longer than {limits.timeout_seconds:g} s; stopped") from exc
    finally:
        _kill(proc)
        proc.stdout.close()
        proc.stderr.close()
        proc.wait()
    return Completed(returncode=returncode, stdout=bytes(out), stderr=bytes(err))
