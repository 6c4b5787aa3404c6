"""Registry credentials from a docker-style ``config.json`` and the distribution token flow: shared by
``convoy bundle verify --docker-config`` (hub side) and the spoke's ``--registry-config`` (pure standard
library, so both sides may use it).

Credentials are looked up as docker does, for the registry's host: ``credHelpers[host]`` names a
helper, else ``auths[host].auth`` (base64 ``user:password``), else ``credsStore`` names a helper for
every registry. A helper is the executable ``docker-credential-<name>`` on ``PATH``, run as
``docker-credential-<name> get`` with the server on stdin; it answers ``{"Username", "Secret"}``. Only
helpers named in the config file the operator passed (``--docker-config``, ``--registry-config``) are run,
never one named by anything fetched, by a plain name only, for at most :data:`HELPER_TIMEOUT` seconds and
:data:`HELPER_MAX_OUTPUT` bytes of answer. Secrets are never logged or echoed: errors name the config
file, the helper and the registry, and a helper's own output (which may hold the secret) is not quoted.

The token flow: a registry answering 401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``
gets a GET of ``realm?service=..&scope=..`` (with the credentials as HTTP Basic when there are some);
the answer's ``token`` (or ``access_token``) is then the bearer for the registry. A ``Basic`` challenge
gets the credentials as HTTP Basic.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

__all__ = ["Credentials", "RegistryAuthError", "bearer_token", "docker_credentials", "parse_challenge"]

_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
HELPER_TIMEOUT = 30.0             #: seconds a credential helper may take
HELPER_MAX_OUTPUT = 64 * 1024    #: bytes of answer read from a credential helper


class RegistryAuthError(Exception):
    """Credentials could not be had; the message names the config file, helper or realm, never a secret."""


@dataclasses.dataclass(frozen=True)
class Credentials:
    username: str
    secret: str = dataclasses.field(repr=False)

    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()


def _keys(registry: str) -> list[str]:
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/"]


def _run_helper(name: str, registry: str, config: Path) -> Credentials | None:
    if not _HELPER_NAME.fullmatch(name):
        raise RegistryAuthError(f"{config}: credential helper name {name!r} is not a plain name")
    executable = shutil.which(f"docker-credential-{name}")
    if executable is None:
        raise RegistryAuthError(f"{config}: credential helper docker-credential-{name} (for {registry}) is not on PATH")
    what = f"docker-credential-{name} for {registry}"
    try:
        returncode, stdout, stderr = _bounded_run([executable, "get"], registry.encode())
    except OSError as exc:
        raise RegistryAuthError(f"{what} failed: {type(exc).__name__}") from None
    except subprocess.TimeoutExpired:
        raise RegistryAuthError(f"{what} did not answer within {HELPER_TIMEOUT:g} s") from None
    if stdout is None:
        raise RegistryAuthError(f"{what} answered more than {HELPER_MAX_OUTPUT} bytes")
    if returncode != 0:
        if b"credentials not found" in (stdout + stderr).lower():
            return None
        raise RegistryAuthError(f"{what} exited with {returncode}")
    try:
        answer = json.loads(stdout)
        return Credentials(str(answer["Username"]), str(answer["Secret"]))
    except (ValueError, KeyError, TypeError):
        raise RegistryAuthError(f'{what}: answer is not {{"Username": ..., "Secret": ...}}') from None


def _bounded_run(argv: list[str], stdin: bytes) -> tuple[int, bytes | None, bytes]:
    """Run ``argv`` with ``stdin``, reading at most :data:`HELPER_MAX_OUTPUT` bytes of each output stream
    (stdout None when it wrote more: the process is killed) and killing it after :data:`HELPER_TIMEOUT`."""
    # Its own process group, killed whole: a helper script's children must not keep the pipes open.
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)

    def kill() -> None:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)

    killer = threading.Timer(HELPER_TIMEOUT, kill)
    killer.start()
    try:
        stderr_parts: list[bytes] = []
        # stderr in its own thread: a helper that fills the stderr pipe must not stall the stdout read.
        reader = threading.Thread(target=lambda: stderr_parts.append(_read_at_most(process.stderr)), daemon=True)
        reader.start()
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        stdout = _read_at_most(process.stdout)
        if len(stdout) > HELPER_MAX_OUTPUT:
            kill()
        returncode = process.wait()
        reader.join(1.0)
        timed_out = not killer.is_alive()
    finally:
        killer.cancel()
        if process.poll() is None:
            kill()
            process.wait()
    if timed_out:
        raise subprocess.TimeoutExpired(argv, HELPER_TIMEOUT)
    if len(stdout) > HELPER_MAX_OUTPUT:
        return returncode, None, b""
    return returncode, stdout, b"".join(stderr_parts)[:HELPER_MAX_OUTPUT]


def _read_at_most(stream: IO[bytes] | None) -> bytes:
    """Until end of stream, but at most HELPER_MAX_OUTPUT + 1 bytes (one more tells "too much")."""
    if stream is None:
        return b""
    data = b""
    while len(data) <= HELPER_MAX_OUTPUT:
        chunk = os.read(stream.fileno(), HELPER_MAX_OUTPUT + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return data


def docker_credentials(config: Path | None, registry: str) -> Credentials | None:
    """The credentials ``config`` (a docker ``config.json``) gives ``registry`` (host[:port]), or None."""
    if config is None:
        return None
    try:
        document: dict[str, Any] = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise RegistryAuthError(f"{config}: cannot read the docker config ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise RegistryAuthError(f"{config}: not a docker config (a JSON object)")
    helpers = document.get("credHelpers") or {}
    for key in _keys(registry):
        if isinstance(helpers, dict) and isinstance(helpers.get(key), str):
            return _run_helper(helpers[key], registry, config)
    auths = document.get("auths") or {}
    for key in _keys(registry):
        entry = auths.get(key) if isinstance(auths, dict) else None
        if isinstance(entry, dict) and entry.get("auth"):
            try:
                user, _, secret = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except ValueError:
                raise RegistryAuthError(f"{config}: auths.{key}.auth is not base64 user:password") from None
            return Credentials(user, secret)
    store = document.get("credsStore")
    if isinstance(store, str) and store:
        return _run_helper(store, registry, config)
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` into ("bearer", {realm, service, ...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def bearer_token(challenge: dict[str, str], *, repository: str, credentials: Credentials | None,
                 context: Any = None, timeout: float = 30.0) -> str:
    """The distribution token flow for pulling ``repository``."""
    params = dict(challenge)
    realm = params.pop("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise RegistryAuthError(f"unusable bearer challenge: realm {realm!r}")
    params.setdefault("scope", f"repository:{repository}:pull")
    headers = {"Authorization": f"Basic {credentials.basic()}"} if credentials is not None else {}
    request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(params)}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            document = json.loads(response.read(1024 * 1024))
    except urllib.error.HTTPError as exc:
        raise RegistryAuthError(f"token request to {realm}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RegistryAuthError(f"token request to {realm} failed ({getattr(exc, 'reason', exc)})") from None
    token = document.get("token") or document.get("access_token") if isinstance(document, dict) else None
    if not token:
        raise RegistryAuthError(f"token response from {realm} has no token")
    return str(token)
