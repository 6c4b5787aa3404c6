"""RepoFS: a Git commit read from the object database and a plain directory give the same view."""

from __future__ import annotations

import os
import pathlib

import git
import pytest

from hub.tree import repofs
from hub.tree.errors import LimitError, RepoPathError


def make_tree(root: pathlib.Path) -> None:
    (root / "apps" / "web").mkdir(parents=True)
    (root / "apps" / "web" / "kustomization.yaml").write_text("resources:\n- deploy.yaml\n")
    (root / "apps" / "web" / "deploy.yaml").write_text("kind: Deployment\n")
    (root / "shared").mkdir()
    (root / "shared" / "labels.yaml").write_text("team: a\n")
    # An in-repo symlink to a file and one to a directory: both resolve inside the repository.
    os.symlink("../../shared/labels.yaml", root / "apps" / "web" / "labels.yaml")
    os.symlink("apps/web", root / "web-link")


@pytest.fixture
def repo_dir(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    root = tmp_path / "repo"
    root.mkdir()
    make_tree(root)
    repo = git.Repo.init(root)
    repo.index.add(["apps/web/kustomization.yaml", "apps/web/deploy.yaml", "shared/labels.yaml",
                    "apps/web/labels.yaml", "web-link"])
    commit = repo.index.commit("fleet", author=git.Actor("t", "t@example.com"),
                               committer=git.Actor("t", "t@example.com"))
    return root, str(commit.hexsha)


def both(repo_dir: tuple[pathlib.Path, str]) -> list[repofs.RepoFS]:
    root, sha = repo_dir
    return [repofs.DirectoryFS(root), repofs.GitTreeFS(git.Repo(root), sha)]


def test_git_and_directory_views_agree(repo_dir: tuple[pathlib.Path, str]) -> None:
    directory, tree = both(repo_dir)
    for fs in (directory, tree):
        assert fs.list_dir("apps/web") == ["deploy.yaml", "kustomization.yaml", "labels.yaml"]
        assert fs.read_bytes("apps/web/deploy.yaml") == b"kind: Deployment\n"
        assert fs.read_bytes("apps/web/labels.yaml") == b"team: a\n"  # through the symlink
        assert fs.read_bytes("web-link/deploy.yaml") == b"kind: Deployment\n"  # through a directory link
        assert fs.is_dir("apps") and fs.is_dir("") and not fs.is_dir("apps/web/deploy.yaml")
        assert fs.is_file("apps/web/deploy.yaml") and not fs.is_file("apps/nope.yaml")
        assert fs.read_bytes("./apps//web/../web/deploy.yaml") == b"kind: Deployment\n"


def test_revision_and_tree_ids(repo_dir: tuple[pathlib.Path, str]) -> None:
    root, sha = repo_dir
    directory, tree = both(repo_dir)
    assert tree.revision == sha
    assert directory.revision == f"dir:{os.path.realpath(root)}"
    blob = git.Repo(root).commit(sha).tree / "apps" / "web" / "deploy.yaml"
    assert tree.tree_id("apps/web/deploy.yaml") == blob.hexsha
    # Content ids: the same content gives the same id, a change gives another.
    before = directory.tree_id("apps/web")
    assert directory.tree_id("apps/web") == before
    (root / "apps" / "web" / "deploy.yaml").write_text("kind: StatefulSet\n")
    assert directory.tree_id("apps/web") != before
    assert directory.tree_id("shared") == repofs.DirectoryFS(root).tree_id("shared")


def test_git_view_reads_the_commit_not_the_working_tree(repo_dir: tuple[pathlib.Path, str]) -> None:
    root, sha = repo_dir
    (root / "apps" / "web" / "deploy.yaml").write_text("changed on disk\n")
    (root / "apps" / "web" / "new.yaml").write_text("not committed\n")
    fs = repofs.GitTreeFS(git.Repo(root), sha)
    assert fs.read_bytes("apps/web/deploy.yaml") == b"kind: Deployment\n"
    assert not fs.is_file("apps/web/new.yaml")


@pytest.mark.parametrize("path", ["../outside", "apps/../../etc/passwd", "/etc/passwd",
                                  "https://example.com/x.yaml", "github.com/org/repo/base",
                                  "git@github.com:org/repo.git"])
def test_paths_leaving_the_repository_are_refused(repo_dir: tuple[pathlib.Path, str], path: str) -> None:
    for fs in both(repo_dir):
        with pytest.raises(RepoPathError) as info:
            fs.read_bytes(path)
        assert path in str(info.value)


@pytest.mark.parametrize(("path", "remote"), [
    ("https://github.com/org/repo//base?ref=v1", True), ("git@github.com:org/repo.git", True),
    ("ssh://git@example.com/repo", True), ("github.com/org/repo/base", True),
    ("example.com/org/repo/base?ref=main", True), ("my.app/base", False), ("../base", False),
    ("apps/web.v2/overlay", False)])
def test_remote_detection(path: str, remote: bool) -> None:
    assert repofs.is_remote(path) is remote


def test_normalize() -> None:
    assert repofs.normalize("base", base="apps/web") == "apps/web/base"
    assert repofs.normalize("../shared", base="apps/web") == "apps/shared"
    assert repofs.normalize(".") == ""
    with pytest.raises(RepoPathError, match="escapes"):
        repofs.normalize("../../..", base="apps/web", file="apps/web/kustomization.yaml")
    with pytest.raises(RepoPathError, match="absolute"):
        repofs.normalize("/abs")
    with pytest.raises(RepoPathError, match="remote"):
        repofs.normalize("https://github.com/org/repo//base?ref=v1")


def test_symlink_escaping_the_root_is_refused(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("token\n")
    (root / "ok.yaml").write_text("a: b\n")
    os.symlink("../secret.txt", root / "leak.yaml")
    os.symlink("/etc", root / "etc-link")
    repo = git.Repo.init(root)
    repo.index.add(["ok.yaml", "leak.yaml", "etc-link"])
    sha = str(repo.index.commit("x", author=git.Actor("t", "t@example.com"),
                                committer=git.Actor("t", "t@example.com")).hexsha)
    for fs in (repofs.DirectoryFS(root), repofs.GitTreeFS(repo, sha)):
        with pytest.raises(RepoPathError, match="escapes the repository root"):
            fs.read_bytes("leak.yaml")
        with pytest.raises(RepoPathError, match="escapes the repository root"):
            fs.list_dir("etc-link")
        assert fs.read_bytes("ok.yaml") == b"a: b\n"


def test_symlink_loop_is_refused(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    repo = git.Repo.init(root)
    repo.index.add(["a", "b"])
    sha = str(repo.index.commit("x", author=git.Actor("t", "t@example.com"),
                                committer=git.Actor("t", "t@example.com")).hexsha)
    with pytest.raises(RepoPathError, match="loops"):
        repofs.GitTreeFS(repo, sha).read_bytes("a")


def test_missing_paths_and_unknown_commit(repo_dir: tuple[pathlib.Path, str]) -> None:
    root, _ = repo_dir
    for fs in both(repo_dir):
        with pytest.raises(RepoPathError, match="does not exist"):
            fs.read_bytes("apps/missing.yaml")
        with pytest.raises(RepoPathError, match="does not exist"):
            fs.list_dir("nowhere")
    with pytest.raises(RepoPathError, match="not in the repository"):
        repofs.GitTreeFS(git.Repo(root), "0" * 40)
    with pytest.raises(RepoPathError, match="not a directory"):
        repofs.DirectoryFS(root / "apps" / "web" / "deploy.yaml")


def test_materialize_writes_the_commit_with_links_resolved(repo_dir: tuple[pathlib.Path, str],
                                                          tmp_path: pathlib.Path) -> None:
    root, sha = repo_dir
    dest = tmp_path / "out"
    repofs.materialize(repofs.GitTreeFS(git.Repo(root), sha), dest)
    assert (dest / "apps" / "web" / "deploy.yaml").read_text() == "kind: Deployment\n"
    assert (dest / "apps" / "web" / "labels.yaml").read_text() == "team: a\n"
    assert not (dest / "apps" / "web" / "labels.yaml").is_symlink()
    assert (dest / "web-link" / "kustomization.yaml").is_file()


def test_directory_links_that_loop_are_refused_or_skipped(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    (root / "apps").mkdir(parents=True)
    (root / "apps" / "cm.yaml").write_text("a: b\n")
    os.symlink("..", root / "apps" / "up")
    repo = git.Repo.init(root)
    repo.index.add(["apps/cm.yaml", "apps/up"])
    sha = str(repo.index.commit("x", author=git.Actor("t", "t@example.com"),
                                committer=git.Actor("t", "t@example.com")).hexsha)
    with pytest.raises(RepoPathError, match="loops"):
        repofs.DirectoryFS(root).tree_id("apps")
    for fs in (repofs.DirectoryFS(root), repofs.GitTreeFS(repo, sha)):
        dest = tmp_path / f"out-{type(fs).__name__}"
        repofs.materialize(fs, dest)
        assert (dest / "apps" / "cm.yaml").read_text() == "a: b\n"
        assert not (dest / "apps" / "up").exists()


def test_materialize_does_not_multiply_through_directory_links(tmp_path: pathlib.Path) -> None:
    # Each level links the previous one twice: copying it naively writes the bottom 2^16 times.
    root = tmp_path / "repo"
    (root / "l0").mkdir(parents=True)
    (root / "l0" / "cm.yaml").write_text("a: b\n")
    for level in range(1, 17):
        (root / f"l{level}").mkdir()
        for half in "ab":
            os.symlink(f"../l{level - 1}", root / f"l{level}" / half)
    repo = git.Repo.init(root)
    repo.git.add(A=True)
    sha = str(repo.index.commit("x", author=git.Actor("t", "t@example.com"),
                                committer=git.Actor("t", "t@example.com")).hexsha)
    for fs in (repofs.DirectoryFS(root), repofs.GitTreeFS(repo, sha)):
        with pytest.raises(LimitError, match="more than 1000 files and directories"):
            repofs.materialize(fs, tmp_path / f"out-{type(fs).__name__}", max_entries=1000)
    with pytest.raises(LimitError, match="holds at most 30 bytes in all"):
        repofs.materialize(repofs.GitTreeFS(repo, sha), tmp_path / "out-bytes", "l3", max_bytes=30)


def test_a_huge_git_tree_is_refused_from_its_header(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    (root / "many").mkdir(parents=True)
    for index in range(300):
        (root / "many" / f"file-{index:04}.yaml").write_text("a: b\n")
    (root / "ok.yaml").write_text("a: b\n")
    repo = git.Repo.init(root)
    repo.git.add(A=True)
    sha = str(repo.index.commit("x", author=git.Actor("t", "t@example.com"),
                                committer=git.Actor("t", "t@example.com")).hexsha)
    monkeypatch.setattr(repofs, "MAX_TREE_BYTES", 4096)  # 300 entries make a ~13 KB tree
    fs = repofs.GitTreeFS(repo, sha)
    assert fs.read_bytes("ok.yaml") == b"a: b\n"
    with pytest.raises(LimitError, match=r"many: directory has a \d+-byte Git tree, over the 4096-byte limit$"):
        fs.list_dir("many")
    with pytest.raises(LimitError, match="over the 4096-byte limit"):
        fs.read_bytes("many/file-0001.yaml")
