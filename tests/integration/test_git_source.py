"""The hub's Git source on real repositories: fetch, forward-only checks, signed commits."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.source import git as gitsource

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fleet Dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
    "GIT_COMMITTER_NAME": "Fleet Dev", "GIT_COMMITTER_EMAIL": "dev@example.test",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    return subprocess.run(args, cwd=cwd, env=full_env, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, name: str, content: str, *extra: str, env: dict[str, str] | None = None) -> str:
    (repo / name).write_text(content)
    run("git", "add", name, cwd=repo)
    run("git", "commit", "-q", "-m", f"change {name}", *extra, cwd=repo, env=env)
    return run("git", "rev-parse", "HEAD", cwd=repo)


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    repo = tmp_path / "upstream"
    repo.mkdir()
    run("git", "init", "-q", "-b", "main", cwd=repo)
    commit(repo, "fleet.yaml", "apps: []\n")
    return repo


@pytest.fixture
def source(upstream: Path, tmp_path: Path) -> gitsource.GitSource:
    return gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "mirror", ref="main")


def test_fetch_follows_the_branch(upstream: Path, source: gitsource.GitSource) -> None:
    first = source.fetch()
    assert first.sha == run("git", "rev-parse", "HEAD", cwd=upstream)
    assert first.author == "Fleet Dev" and first.message == "change fleet.yaml"
    second_sha = commit(upstream, "a.yaml", "x: 1\n")
    second = source.fetch()
    assert second.sha == second_sha and second.parents == (first.sha,)
    assert source.is_descendant(second.sha, first.sha)
    assert not source.is_descendant(first.sha, second.sha)


def test_history_rewrite_is_not_a_descendant(upstream: Path, source: gitsource.GitSource) -> None:
    commit(upstream, "a.yaml", "x: 1\n")
    deployed = source.fetch().sha
    run("git", "reset", "-q", "--hard", "HEAD~1", cwd=upstream)
    rewritten = commit(upstream, "b.yaml", "y: 2\n")
    head = source.fetch()
    assert head.sha == rewritten
    assert not source.is_descendant(head.sha, deployed)


def test_tags_and_pinned_commits_resolve(upstream: Path, tmp_path: Path) -> None:
    first = run("git", "rev-parse", "HEAD", cwd=upstream)
    run("git", "tag", "v1", cwd=upstream)
    commit(upstream, "a.yaml", "x: 1\n")
    tagged = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m1", ref="v1")
    assert tagged.fetch().sha == first
    pinned = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m2", ref=first)
    assert pinned.fetch().sha == first


def test_unknown_ref_is_a_clear_error(source: gitsource.GitSource, tmp_path: Path, upstream: Path) -> None:
    missing = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m", ref="no-such-branch")
    with pytest.raises(gitsource.GitSourceError, match="no branch, tag or commit named 'no-such-branch'"):
        missing.fetch()


def test_a_branch_named_like_the_pinned_tag_is_refused_not_deployed(upstream: Path, tmp_path: Path) -> None:
    """Ref confusion: a hub pinned to tag v1 must never deploy a *branch* someone named v1."""
    tagged = run("git", "rev-parse", "HEAD", cwd=upstream)
    run("git", "tag", "-a", "v1", "-m", "release 1", cwd=upstream)
    run("git", "checkout", "-q", "-b", "v1", cwd=upstream)
    hostile = commit(upstream, "evil.yaml", "x: 1\n")
    run("git", "checkout", "-q", "main", cwd=upstream)

    bare = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m1", ref="v1")
    with pytest.raises(gitsource.GitSourceError) as caught:
        bare.fetch()
    message = str(caught.value)
    assert "ambiguous" in message and "refs/tags/v1" in message and "refs/heads/v1" in message
    assert hostile not in message

    pinned = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m2", ref="refs/tags/v1")
    assert pinned.fetch().sha == tagged                    # an annotated tag, peeled to its commit
    branch = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m3", ref="refs/heads/v1")
    assert branch.fetch().sha == hostile
    # A full sha is a commit, whatever refs are called.
    run("git", "branch", tagged, "main", cwd=upstream)
    by_sha = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m4", ref=tagged)
    assert by_sha.fetch().sha == tagged


def test_a_short_sha_that_is_also_a_ref_name_is_refused(upstream: Path, tmp_path: Path) -> None:
    first = run("git", "rev-parse", "HEAD", cwd=upstream)
    commit(upstream, "a.yaml", "x: 1\n")
    run("git", "tag", first[:10], cwd=upstream)            # a tag whose name is the pinned short sha...
    run("git", "tag", "-f", first[:10], "HEAD", cwd=upstream)  # ...pointing somewhere else
    source = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m", ref=first[:10])
    with pytest.raises(gitsource.GitSourceError, match="ambiguous"):
        source.fetch()
    unique = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m2", ref=first[:12])
    assert unique.fetch().sha == first


def test_the_followed_branch_is_never_a_tag_of_the_same_name(upstream: Path, tmp_path: Path) -> None:
    from hub.settings import HubSettings

    branch_head = run("git", "rev-parse", "HEAD", cwd=upstream)
    commit(upstream, "a.yaml", "x: 1\n")
    run("git", "tag", "main", "HEAD", cwd=upstream)        # a tag named like the branch, ahead of it
    run("git", "reset", "-q", "--hard", "HEAD~1", cwd=upstream)
    settings = HubSettings(repo=str(upstream), data_dir=tmp_path / "data", branch="main")
    assert settings.tracked_ref == "refs/heads/main"
    source = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m", ref=settings.tracked_ref)
    assert source.fetch().sha == branch_head
    assert HubSettings(repo="x", data_dir=tmp_path / "d", rev="refs/tags/v1").tracked_ref == "refs/tags/v1"


def test_unreachable_remote_error_hides_credentials(tmp_path: Path) -> None:
    secret_url = "https://user:hunter2-secret@127.0.0.1:9/fleet.git"
    broken = gitsource.GitSource(url=secret_url, mirror_dir=tmp_path / "m", ref="main")
    with pytest.raises(gitsource.GitSourceError) as caught:
        broken.fetch()
    assert "hunter2-secret" not in str(caught.value)
    assert "***@127.0.0.1" in str(caught.value)
    assert "hunter2-secret" not in repr(broken)


def test_https_token_never_reaches_the_mirror_config(
    tmp_path: Path, upstream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TOKEN", "tok-very-secret")
    auth = gitsource.GitAuth(https_token_env="FLEET_TOKEN")
    src = gitsource.GitSource(url=str(upstream), mirror_dir=tmp_path / "m", ref="main", auth=auth)
    src.fetch()
    stored = "".join(p.read_text(errors="ignore") for p in (tmp_path / "m").rglob("*") if p.is_file()
                     and p.stat().st_size < 100_000)
    assert "tok-very-secret" not in stored
    assert "tok-very-secret" not in repr(auth)
    assert "Authorization: Basic" in auth.environment()["GIT_CONFIG_VALUE_0"]


def test_token_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    auth = gitsource.GitAuth(https_token_file=tmp_path / "absent")
    with pytest.raises(gitsource.GitSourceError, match="cannot read the HTTPS token file"):
        auth.environment()


# -- signed commits ---------------------------------------------------------------------------


@pytest.fixture
def ssh_signer(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    key = tmp_path / "signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f", str(key)], check=True)
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"dev@example.test {(tmp_path / 'signing_key.pub').read_text()}")
    yield key, allowed


def ssh_sign_args(key: Path) -> tuple[str, ...]:
    return ("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}")


def test_ssh_signed_commit_verifies_and_unsigned_is_refused(
    upstream: Path, source: gitsource.GitSource, ssh_signer: tuple[Path, Path], tmp_path: Path
) -> None:
    key, allowed = ssh_signer
    policy = gitsource.SignaturePolicy(allowed_signers_file=allowed)
    unsigned = source.fetch().sha
    assert source.verify_commit(unsigned, policy).verdict is gitsource.SignatureVerdict.UNSIGNED

    (upstream / "s.yaml").write_text("s: 1\n")
    run("git", "add", "s.yaml", cwd=upstream)
    run("git", *ssh_sign_args(key), "commit", "-q", "-S", "-m", "signed", cwd=upstream)
    signed = source.fetch().sha
    check = source.verify_commit(signed, policy)
    assert check.verdict is gitsource.SignatureVerdict.GOOD, check.detail
    assert check.ok

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    (upstream / "t.yaml").write_text("t: 1\n")
    run("git", "add", "t.yaml", cwd=upstream)
    run("git", *ssh_sign_args(other), "commit", "-q", "-S", "-m", "signed by a stranger", cwd=upstream)
    stranger = source.fetch().sha
    verdict = source.verify_commit(stranger, policy)
    assert verdict.verdict is gitsource.SignatureVerdict.UNTRUSTED, verdict.detail
    assert not verdict.ok
    assert source.verify_commit(stranger, None).verdict is gitsource.SignatureVerdict.NOT_CHECKED


def test_a_retired_ssh_key_cannot_sign_by_backdating(
    upstream: Path, source: gitsource.GitSource, ssh_signer: tuple[Path, Path]
) -> None:
    """valid-before retires a key: a commit dated before that must not make its signature good today."""
    key, allowed = ssh_signer
    now = dt.datetime.now(dt.UTC)
    public = (key.parent / "signing_key.pub").read_text()
    retired = allowed.parent / "retired_signers"
    retired.write_text(f'dev@example.test valid-before="{(now - dt.timedelta(days=1)):%Y%m%d}" {public}')
    backdated = (now - dt.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (upstream / "b.yaml").write_text("b: 1\n")
    run("git", "add", "b.yaml", cwd=upstream)
    run("git", *ssh_sign_args(key), "commit", "-q", "-S", "-m", "backdated", cwd=upstream,
        env={"GIT_AUTHOR_DATE": backdated, "GIT_COMMITTER_DATE": backdated})
    sha = source.fetch().sha

    check = source.verify_commit(sha, gitsource.SignaturePolicy(allowed_signers_file=retired))
    assert check.verdict is gitsource.SignatureVerdict.UNTRUSTED, check.detail
    assert not check.ok and "not valid" in check.detail
    # The same signature is good while the key is in force, and was good at the time it claims.
    assert source.verify_commit(sha, gitsource.SignaturePolicy(allowed_signers_file=allowed)).ok
    then = source.verify_commit(sha, gitsource.SignaturePolicy(allowed_signers_file=retired),
                                at=now - dt.timedelta(days=5))
    assert then.verdict is gitsource.SignatureVerdict.GOOD, then.detail


def test_a_tampered_ssh_signed_commit_is_bad(
    upstream: Path, source: gitsource.GitSource, ssh_signer: tuple[Path, Path], tmp_path: Path
) -> None:
    key, allowed = ssh_signer
    (upstream / "c.yaml").write_text("c: 1\n")
    run("git", "add", "c.yaml", cwd=upstream)
    run("git", *ssh_sign_args(key), "commit", "-q", "-S", "-m", "signed", cwd=upstream)
    raw = subprocess.run(["git", "cat-file", "commit", "HEAD"], cwd=upstream, check=True,
                         capture_output=True).stdout
    forged = raw.replace(b"\n\nsigned", b"\n\nsigned, then edited")
    sha = subprocess.run(["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=upstream, input=forged,
                         check=True, capture_output=True).stdout.decode().strip()
    run("git", "update-ref", "refs/heads/main", sha, cwd=upstream)
    assert source.fetch().sha == sha
    check = source.verify_commit(sha, gitsource.SignaturePolicy(allowed_signers_file=allowed))
    assert check.verdict is gitsource.SignatureVerdict.BAD, check.detail


def _gpg(home: Path, *args: str) -> str:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], check=True,
                          capture_output=True, text=True).stdout


def test_gpg_signed_commit_verifies_against_the_keyring(
    upstream: Path, source: gitsource.GitSource, tmp_path: Path
) -> None:
    signer_home = tmp_path / "gpg-signer"
    signer_home.mkdir(mode=0o700)
    _gpg(signer_home, "--passphrase", "", "--quick-gen-key", "Fleet Dev <dev@example.test>", "ed25519", "sign", "1d")
    fingerprint = next(line.split(":")[9] for line in _gpg(signer_home, "--with-colons", "--list-keys").splitlines()
                   if line.startswith("fpr:"))
    public = tmp_path / "fleet-signers.asc"
    public.write_text(_gpg(signer_home, "--armor", "--export", fingerprint))
    gpg_env = {"GNUPGHOME": str(signer_home)}
    try:
        (upstream / "g.yaml").write_text("g: 1\n")
        run("git", "add", "g.yaml", cwd=upstream)
        run("git", "-c", f"user.signingkey={fingerprint}", "commit", "-q", "-S", "-m", "gpg signed",
            cwd=upstream, env=gpg_env)
        signed = source.fetch().sha
        check = source.verify_commit(signed, gitsource.SignaturePolicy(gpg_keyring=public))
        assert check.verdict is gitsource.SignatureVerdict.GOOD, check.detail
        assert "Fleet Dev" in check.detail

        empty_home = tmp_path / "gpg-empty"
        empty_home.mkdir(mode=0o700)
        untrusted = source.verify_commit(signed, gitsource.SignaturePolicy(gpg_keyring=empty_home))
        assert untrusted.verdict is gitsource.SignatureVerdict.UNTRUSTED
    finally:
        subprocess.run(["gpgconf", "--homedir", str(signer_home), "--kill", "all"], check=False)


def test_changed_paths_between_commits_count_both_sides_of_a_rename(upstream: Path,
                                                                   source: gitsource.GitSource) -> None:
    first = source.fetch().sha
    (upstream / "apps" / "web").mkdir(parents=True)
    commit(upstream, "apps/web/deploy.yaml", "kind: Deployment\n")
    run("git", "mv", "fleet.yaml", "fleet-old.yaml", cwd=upstream)
    run("git", "commit", "-q", "-m", "rename", cwd=upstream)
    second = source.fetch().sha
    assert source.changed_paths(first, second) == ["apps/web/deploy.yaml", "fleet-old.yaml", "fleet.yaml"]
    assert source.changed_paths(second, second) == []
    with pytest.raises(gitsource.GitSourceError, match="git diff"):
        source.changed_paths("0" * 40, second)  # a commit gone from the mirror: the caller keeps the gate closed
