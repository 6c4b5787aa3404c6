"""The fleet repository as a bare mirror, read commit by commit.

Everything here blocks (it runs ``git``); the hub calls it from a worker
thread. Credentials reach ``git`` only through the environment of the one
command that needs them (``GIT_SSH_COMMAND``, ``GIT_CONFIG_*``), never through
argv, the mirror's config file, logs or exception messages.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import git

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hub.tree import repofs

__all__ = [
    "CommitInfo",
    "GitAuth",
    "GitSource",
    "GitSourceError",
    "SignatureCheck",
    "SignaturePolicy",
    "SignatureVerdict",
    "redact_url",
]

_SHA_RE = re.compile(r"[0-9a-f]{40}\Z")
_SHORT_SHA_RE = re.compile(r"[0-9a-f]{4,39}\Z")
#: What ``git fetch`` says when the mirror itself (not the remote) is broken.
_DAMAGED_MIRROR = ("inflate:", "corrupt", "unable to read", "bad object", "missing blob", "missing tree",
                   "loose object", "did not receive expected object")
_URL_CREDENTIALS_RE = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``https://user:secret@host/repo`` -> ``https://***@host/repo``."""
    return _URL_CREDENTIALS_RE.sub(r"\g<scheme>***@", url)


class GitSourceError(Exception):
    """Fetching or reading the fleet repository failed; the message is safe to show."""


@dataclasses.dataclass(frozen=True)
class GitAuth:
    """How the hub authenticates to the fleet repository (all optional)."""

    ssh_key_file: Path | None = None       #: private key for ssh:// and scp-style URLs
    https_token_file: Path | None = None   #: file holding an HTTPS token
    https_token_env: str | None = None     #: name of an environment variable holding one

    def __repr__(self) -> str:
        return (f"GitAuth(ssh_key_file={self.ssh_key_file!s}, https_token_file={self.https_token_file!s}, "
                f"https_token_env={self.https_token_env!r})")

    def _token(self) -> str | None:
        if self.https_token_file is not None:
            try:
                return self.https_token_file.read_text().strip()
            except OSError as exc:
                raise GitSourceError(f"cannot read the HTTPS token file {self.https_token_file}: "
                                     f"{exc.strerror}") from None
        if self.https_token_env:
            value = os.environ.get(self.https_token_env)
            if not value:
                raise GitSourceError(f"environment variable {self.https_token_env} (HTTPS token) is empty")
            return value.strip()
        return None

    def environment(self) -> dict[str, str]:
        """Extra environment for one ``git`` command; the secrets never touch argv or disk."""
        env: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0"}
        if self.ssh_key_file is not None:
            key = shlex.quote(str(self.ssh_key_file))
            env["GIT_SSH_COMMAND"] = (
                f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
            )
        token = self._token()
        if token:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"})
        return env


@dataclasses.dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    author_email: str
    authored_at: dt.datetime
    message: str
    parents: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.sha[:8]


class SignatureVerdict(enum.StrEnum):
    """The outcome of checking a commit's signature."""

    GOOD = "good"                #: signed by a key the hub trusts
    UNSIGNED = "unsigned"        #: no signature at all
    UNTRUSTED = "untrusted"      #: a valid signature by a key the hub does not trust
    BAD = "bad"                  #: the signature does not verify
    NOT_CHECKED = "not-checked"  #: signed commits are not required


@dataclasses.dataclass(frozen=True)
class SignaturePolicy:
    """Which signers the hub trusts. At least one of the two when signatures are required."""

    allowed_signers_file: Path | None = None  #: SSH allowed-signers file (``ssh-keygen -Y verify`` format)
    gpg_keyring: Path | None = None           #: a GnuPG home directory, or an exported public-key file


@dataclasses.dataclass(frozen=True)
class SignatureCheck:
    verdict: SignatureVerdict
    detail: str

    @property
    def ok(self) -> bool:
        return self.verdict in {SignatureVerdict.GOOD, SignatureVerdict.NOT_CHECKED}


class GitSource:
    """A bare mirror of one repository, following one branch, tag or pinned commit."""

    def __init__(self, *, url: str, mirror_dir: Path, ref: str = "main", auth: GitAuth | None = None,
                 timeout: float = 300.0, stall_seconds: float = 30.0) -> None:
        self.url = url
        self.mirror_dir = Path(mirror_dir)
        self.ref = ref
        self.auth = auth or GitAuth()
        self.timeout = timeout              #: longest any one git command may run
        self.stall_seconds = stall_seconds  #: an HTTP(S) transfer slower than 1 byte/s this long is cut
        self._lock = threading.Lock()
        self._repo: git.Repo | None = None
        self._trees: repofs.TreeCache | None = None   # shared by fs_at views (see repofs.TreeCache)
        self._trees_of: git.Repo | None = None

    def __repr__(self) -> str:
        return f"GitSource(url={redact_url(self.url)!r}, ref={self.ref!r})"

    # -- fetching -----------------------------------------------------------------------------
    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = self._open_or_init()
        return self._repo

    def _open_or_init(self) -> git.Repo:
        if (self.mirror_dir / "HEAD").exists():
            return git.Repo(self.mirror_dir)
        self.mirror_dir.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(self.mirror_dir, bare=True)
        with repo.config_writer() as config:
            # The URL is stored without credentials: tokens travel only in the fetch's environment.
            config.set_value('remote "origin"', "url", self._url_for_git())
            config.set_value('remote "origin"', "fetch", "+refs/heads/*:refs/heads/*")
            config.set_value('remote "origin"', "tagOpt", "--tags")
        return repo

    def _url_for_git(self) -> str:
        path = Path(self.url)
        if "://" not in self.url and not re.match(r"^[\w.-]+@[\w.-]+:", self.url) and path.exists():
            return str(path.resolve())
        return self.url

    def fetch(self) -> CommitInfo:
        """Bring the mirror up to date and return the commit the tracked ref points at."""
        self.download()
        return self.head()

    def download(self) -> None:
        """Only the network part of :meth:`fetch`: one ``git fetch`` subprocess, bounded by the timeouts.

        It reads nothing through GitPython, so it may run while another thread reads commits (the
        hub renders a registering cluster while a slow remote is fetched).
        """
        try:
            with self._lock:
                self._run_git(["fetch", "--prune", "--force", "origin",
                               "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], network=True)
        except GitSourceError as exc:
            # A fetch cut midway can leave a truncated object behind that fails every later fetch
            # ("inflate: data stream error"): only a fresh mirror gets past it.
            if not any(marker in str(exc) for marker in _DAMAGED_MIRROR):
                raise
            log.warning("mirror %s is damaged (%s); fetching it afresh", self.mirror_dir, exc)
            self._refetch()

    def head(self) -> CommitInfo:
        """The commit the tracked ref points at, checked to be whole in the mirror.

        A mirror that lost objects (a deleted pack, a disk fault) would otherwise fail every render
        of every poll with an unreadable-object error: it is fetched afresh once, and if the head is
        still not whole the error names the missing object.
        """
        sha = self.resolve(self.ref)
        missing = self._missing_objects(sha)
        if missing:
            log.warning("mirror %s is damaged (%s); fetching it afresh", self.mirror_dir, missing)
            self._refetch()
            sha = self.resolve(self.ref)
            missing = self._missing_objects(sha)
            if missing:
                raise GitSourceError(f"{redact_url(self.url)}: commit {sha[:12]} is not whole even after "
                                     f"fetching the repository afresh: {missing}")
        return self.commit_info(sha)

    def _missing_objects(self, sha: str) -> str:
        # Lists the head's tree down to every blob without reading them: milliseconds for a fleet repo.
        result = self._run_git(["rev-list", "--objects", "--no-walk", "--missing=error", sha], check=False)
        return "" if result.returncode == 0 else (_first_line(result.stderr.strip()) or f"exit {result.returncode}")

    def _refetch(self) -> None:
        """Fetch into a new mirror beside the damaged one, then swap them."""
        fresh = self.mirror_dir.with_name(self.mirror_dir.name + ".fresh")
        shutil.rmtree(fresh, ignore_errors=True)
        replacement = GitSource(url=self.url, mirror_dir=fresh, ref=self.ref, auth=self.auth, timeout=self.timeout,
                                stall_seconds=self.stall_seconds)
        replacement.download()
        with self._lock:
            damaged = self.mirror_dir.with_name(self.mirror_dir.name + ".damaged")
            shutil.rmtree(damaged, ignore_errors=True)
            self.mirror_dir.rename(damaged)
            fresh.rename(self.mirror_dir)
            shutil.rmtree(damaged, ignore_errors=True)
            self._repo, self._trees, self._trees_of = None, None, None

    def resolve(self, rev: str) -> str:
        """The commit ``rev`` names in the mirror; a name that could mean two things is refused.

        ``rev`` is a full commit sha (always that commit), a fully qualified ref (``refs/heads/v1``,
        ``refs/tags/v1``: exactly that ref, nothing else), or a bare name, which must name exactly
        one of: a branch, a tag, a commit by sha prefix. Git itself would quietly prefer one, so a
        hub pinned to tag ``v1`` could deploy a branch someone pushed as ``v1`` (ref confusion).
        """
        where = redact_url(self.url)
        if _SHA_RE.match(rev):
            return self._commit_of(rev, f"commit {rev}")
        refs = self._refs()
        if rev.startswith("refs/"):
            if rev not in refs:
                raise GitSourceError(f"{where}: no ref {rev}")
            return self._peeled(rev, refs[rev])
        found = {ref: refs[ref] for ref in (f"refs/heads/{rev}", f"refs/tags/{rev}") if ref in refs}
        if _SHORT_SHA_RE.match(rev):
            try:
                full = self.repo.odb.partial_to_complete_sha_hex(rev).hex()
            except (git.exc.BadObject, git.exc.AmbiguousObjectName, ValueError):
                pass
            else:
                found[f"commit {full}"] = (full, "")
        if len(found) > 1:
            raise GitSourceError(f"{where}: {rev!r} is ambiguous: it names {' and '.join(sorted(found))}; "
                                 f"give the full name (refs/tags/{rev}, refs/heads/{rev} or a full commit sha)")
        if not found:
            raise GitSourceError(f"{where}: no branch, tag or commit named {rev!r}")
        (name, target), = found.items()
        if name.startswith("commit "):
            return self._commit_of(target[0], name)
        return self._peeled(name, target)

    def _refs(self) -> dict[str, tuple[str, str]]:
        """Every branch and tag of the mirror: refname -> (object id, peeled object id of a tag or "")."""
        fmt = "%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)"
        listing = self._run_git(["for-each-ref", f"--format={fmt}", "refs/heads", "refs/tags"]).stdout
        refs: dict[str, tuple[str, str]] = {}
        for line in listing.splitlines():
            name, kind, target, peeled_kind, peeled = line.split("\0")
            # Only a commit, or a tag whose object is a commit, can be deployed.
            refs[name] = (target if kind == "commit" else "", peeled if kind == "tag" and
                          peeled_kind == "commit" else "")
        return refs

    def _peeled(self, ref: str, target: tuple[str, str]) -> str:
        sha = target[0] or target[1]
        if not sha:
            raise GitSourceError(f"{redact_url(self.url)}: {ref} does not point at a commit")
        return sha

    def _commit_of(self, sha: str, what: str) -> str:
        try:
            return str(self.repo.commit(sha).hexsha)
        except (git.BadName, ValueError, git.exc.ODBError) as exc:
            raise GitSourceError(f"{redact_url(self.url)}: no {what}") from exc

    def commit_info(self, sha: str) -> CommitInfo:
        try:
            commit = self.repo.commit(sha)
        except (git.BadName, ValueError) as exc:
            raise GitSourceError(f"{redact_url(self.url)}: unknown commit {sha}") from exc
        return CommitInfo(
            sha=str(commit.hexsha),
            author=str(commit.author.name or ""),
            author_email=str(commit.author.email or ""),
            authored_at=dt.datetime.fromtimestamp(commit.authored_date, dt.UTC),
            message=str(commit.message).strip(),
            parents=tuple(str(parent.hexsha) for parent in commit.parents),
        )

    def is_descendant(self, new: str, old: str) -> bool:
        """True when ``new`` is ``old`` or has it in its history (the branch moved forward)."""
        if new == old:
            return True
        # `git merge-base --is-ancestor` exits 1 for "no" and 128 when `old` is gone from the
        # mirror (its history was rewritten away): both mean the branch did not move forward.
        return self._run_git(["merge-base", "--is-ancestor", old, new], check=False).returncode == 0

    def changed_paths(self, old: str, new: str) -> list[str]:
        """The repository-relative paths that differ between commits ``old`` and ``new`` (either side of a
        rename counts). Raises GitSourceError when either commit is not in the mirror."""
        result = self._run_git(["diff", "--name-only", "--no-renames", "-z", old, new, "--"])
        return sorted({path for path in result.stdout.split("\0") if path})

    def fs_at(self, sha: str) -> repofs.GitTreeFS:
        """A read-only view of the tree at ``sha``, straight from the object database."""
        from hub.tree import repofs  # the renderer is only needed once a commit is read

        repo = self.repo
        if self._trees is None or self._trees_of is not repo:
            # Tree entries hold GitPython objects bound to the repository object that read them.
            self._trees, self._trees_of = repofs.TreeCache(), repo
        return repofs.GitTreeFS(repo, sha, trees=self._trees)

    # -- signatures ---------------------------------------------------------------------------
    def verify_commit(self, sha: str, policy: SignaturePolicy | None, *,
                      at: dt.datetime | None = None) -> SignatureCheck:
        """Check ``sha``'s signature against the trusted signers (``policy`` None: not required).

        Keys are judged at ``at`` (default: now, when the hub sees the commit), never at the date
        written into the commit, which its author chooses.
        """
        if policy is None:
            return SignatureCheck(SignatureVerdict.NOT_CHECKED, "signed commits are not required")
        commit = self.repo.commit(sha)
        if not commit.gpgsig:
            return SignatureCheck(SignatureVerdict.UNSIGNED, f"commit {sha[:8]} is not signed")
        signature = str(commit.gpgsig)
        if "BEGIN SSH SIGNATURE" in signature:
            return self._verify_ssh(sha, policy, at or dt.datetime.now(dt.UTC))
        return self._verify_gpg(sha, policy)

    def _verify_ssh(self, sha: str, policy: SignaturePolicy, at: dt.datetime) -> SignatureCheck:
        # Not `git verify-commit`: it has ssh-keygen judge the key at the committer date, so a key the
        # allowed-signers file retired (valid-before) still signs any commit dated before that.
        if policy.allowed_signers_file is None:
            return SignatureCheck(SignatureVerdict.UNTRUSTED,
                                  f"commit {sha[:8]} has an SSH signature but no allowed-signers file is set")
        commit = self.repo.commit(sha)
        signature, payload = _split_signed_commit(self.repo.odb.stream(commit.binsha).read())
        allowed = str(policy.allowed_signers_file)
        with tempfile.TemporaryDirectory(prefix="convoy-sig-") as tmp:
            sig_file = Path(tmp) / "commit.sig"
            sig_file.write_bytes(signature)

            def keygen(*args: str, when: dt.datetime | None = at,
                       stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
                timing = [f"-Overify-time={when.astimezone(dt.UTC):%Y%m%d%H%M%S}Z"] if when else []
                return subprocess.run(["ssh-keygen", "-Y", *args, *timing], input=stdin, capture_output=True,
                                      timeout=60, check=False, env={**os.environ, "LC_ALL": "C"})

            found = keygen("find-principals", "-f", allowed, "-s", str(sig_file))
            principals = found.stdout.decode(errors="replace").split() if found.returncode == 0 else []
            for principal in principals:
                verified = keygen("verify", "-f", allowed, "-I", principal, "-n", "git", "-s", str(sig_file),
                                  stdin=payload)
                if verified.returncode == 0:
                    return SignatureCheck(SignatureVerdict.GOOD,
                                          _first_line(verified.stdout.decode(errors="replace").strip()))
            genuine = keygen("check-novalidate", "-n", "git", "-s", str(sig_file), when=None, stdin=payload)
            if genuine.returncode != 0:
                detail = _first_line((genuine.stderr + genuine.stdout).decode(errors="replace").strip())
                return SignatureCheck(SignatureVerdict.BAD, f"commit {sha[:8]}: SSH signature does not verify "
                                                             f"({detail or 'no detail'})")
            claimed = dt.datetime.fromtimestamp(commit.committed_date, dt.UTC)
            if not principals and keygen("find-principals", "-f", allowed, "-s", str(sig_file),
                                         when=claimed).returncode == 0:
                return SignatureCheck(SignatureVerdict.UNTRUSTED, (
                    f"commit {sha[:8]}: the SSH key is not valid at {at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC "
                    f"in the allowed-signers file (valid-before/valid-after); the commit's own date "
                    f"{claimed:%Y-%m-%d} does not count"))
        return SignatureCheck(SignatureVerdict.UNTRUSTED,
                              f"commit {sha[:8]}: the SSH signer is not in the allowed-signers file")

    def _verify_gpg(self, sha: str, policy: SignaturePolicy) -> SignatureCheck:
        if policy.gpg_keyring is None:
            return SignatureCheck(SignatureVerdict.UNTRUSTED,
                                  f"commit {sha[:8]} has a GPG signature but no GPG keyring is set")
        with _gnupg_home(policy.gpg_keyring) as home:
            result = self._run_git(["verify-commit", "--raw", sha], check=False, extra_env={"GNUPGHOME": home})
        status = result.stderr + result.stdout
        if "[GNUPG:] VALIDSIG" in status and "[GNUPG:] GOODSIG" in status:
            signer = re.search(r"\[GNUPG:\] GOODSIG \S+ (.*)", status)
            return SignatureCheck(SignatureVerdict.GOOD,
                                  f"good GPG signature by {signer.group(1) if signer else 'a trusted key'}")
        if "[GNUPG:] NO_PUBKEY" in status or "[GNUPG:] ERRSIG" in status:
            return SignatureCheck(SignatureVerdict.UNTRUSTED,
                                  f"commit {sha[:8]}: signed by a GPG key that is not in the hub's keyring")
        return SignatureCheck(SignatureVerdict.BAD, f"commit {sha[:8]}: GPG signature does not verify")

    # -- running git --------------------------------------------------------------------------
    def _run_git(self, args: list[str], *, check: bool = True, network: bool = False,
                 extra_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        if network:
            env.update(self.auth.environment())
        env.update(extra_env or {})
        if not (self.mirror_dir / "HEAD").exists():
            self._repo = self._open_or_init()
        # A remote that stops sending (no FIN, no RST) is cut after stall_seconds, not the whole timeout.
        stall = ["-c", "http.lowSpeedLimit=1", "-c", f"http.lowSpeedTime={max(1, round(self.stall_seconds))}"]
        try:
            result = subprocess.run(["git", *(stall if network else []), "--git-dir", str(self.mirror_dir), *args],
                                    env=env, capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise GitSourceError(f"git {args[0]} from {redact_url(self.url)} did not finish within "
                                 f"{self.timeout:g} s (git_timeout); the last good commit stays deployed") from None
        if check and result.returncode != 0:
            # stderr may echo the remote URL; strip credentials before it can reach a log.
            detail = redact_url(_first_line(result.stderr.strip()) or f"exit {result.returncode}")
            raise GitSourceError(f"git {args[0]} from {redact_url(self.url)} failed: {detail}")
        return result


def _split_signed_commit(raw: bytes) -> tuple[bytes, bytes]:
    """(the ``gpgsig`` header's signature, the commit without it: the bytes that were signed)."""
    head, sep, body = raw.partition(b"\n\n")
    signature: list[bytes] = []
    kept: list[bytes] = []
    in_signature = False
    for line in head.split(b"\n"):
        if line.startswith(b"gpgsig "):
            in_signature = True
            signature.append(line[len(b"gpgsig "):])
        elif in_signature and line.startswith(b" "):
            signature.append(line[1:])  # a continuation line of the header
        else:
            in_signature = False
            kept.append(line)
    return b"\n".join(signature) + b"\n", b"\n".join(kept) + sep + body


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


class _gnupg_home:
    """A GNUPGHOME for one verification: the keyring dir itself, or a temp one importing a key file."""

    def __init__(self, keyring: Path) -> None:
        self.keyring = keyring
        self._temp: str | None = None

    def __enter__(self) -> str:
        if self.keyring.is_dir():
            return str(self.keyring)
        self._temp = tempfile.mkdtemp(prefix="convoy-gpg-")
        os.chmod(self._temp, 0o700)
        subprocess.run(["gpg", "--batch", "--homedir", self._temp, "--import", str(self.keyring)],
                       capture_output=True, check=False, timeout=60)
        return self._temp

    def __exit__(self, *exc: object) -> None:
        if self._temp is not None:
            subprocess.run(["gpgconf", "--homedir", self._temp, "--kill", "all"], capture_output=True,
                           check=False, timeout=30)
            shutil.rmtree(self._temp, ignore_errors=True)
