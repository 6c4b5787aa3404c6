"""A read-only view of a fleet repository at one revision.

Paths are repository-relative POSIX paths; ``""`` is the root. Two views:

* :class:`GitTreeFS` reads tree and blob objects straight from the Git object
  database at one commit (no checkout, so many revisions can be read at once
  and nothing on disk can change under a render);
* :class:`DirectoryFS` reads a plain directory, for local use.

Both refuse paths that leave the root — ``..``, absolute paths, URLs, and
symlinks pointing outside — with :class:`~hub.tree.errors.RepoPathError`.
``read_bytes(path, max_bytes=N)`` refuses a bigger file with
:class:`~hub.tree.errors.LimitError` *before* reading it (the size comes from the
Git object header, or ``stat``); :class:`BoundedFS` applies one such bound to every read.
``tree_id`` is a content id (the Git object id, or a sha256 of the content for a
directory), so a render can be cached by the ids of its inputs.
"""

from __future__ import annotations

import collections
import hashlib
import os
import pathlib
import posixpath
import re
import stat
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hub.tree.errors import LimitError, RepoPathError

if TYPE_CHECKING:
    import git

__all__ = ["BoundedFS", "DirectoryFS", "GitTreeFS", "RepoFS", "TreeCache", "is_remote", "materialize", "normalize"]

# What kustomize would fetch: a URL, scp-style git, a well-known forge path, or a `?ref=` query. A
# local directory that merely has a dot in its name (`my.app/base`) is not remote.
_URL_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|[\w.-]+@[\w.-]+:|(github\.com|gitlab\.com|bitbucket\.org|"
                     r"dev\.azure\.com|ssh\.dev\.azure\.com)/)|[?&](ref|version|timeout|submodules)=")
_MAX_SYMLINK_HOPS = 40
_SYMLINK_MODE = 0o120000
#: Largest Git tree object (one directory's entries, ~40 bytes each) read: about 400,000 entries.
MAX_TREE_BYTES = 16 * 1024 * 1024
#: Longest symlink target read (PATH_MAX): a link blob is read whole to resolve it.
_MAX_LINK_BYTES = 4096
_CHUNK = 1024 * 1024


@runtime_checkable
class RepoFS(Protocol):
    """A read-only file tree at one revision."""

    @property
    def revision(self) -> str:
        """The commit sha, or ``dir:<absolute path>``."""
        ...

    def read_bytes(self, path: str, *, max_bytes: int | None = None) -> bytes:
        """The file's content; a file over ``max_bytes`` is refused (LimitError) without being read."""
        ...

    def is_dir(self, path: str) -> bool: ...

    def is_file(self, path: str) -> bool: ...

    def list_dir(self, path: str) -> list[str]:
        """Sorted entry names of a directory."""
        ...

    def tree_id(self, path: str) -> str:
        """A content id of a file or directory (Git object id, or sha256 of the content)."""
        ...


def is_remote(path: str) -> bool:
    """True for what kustomize would fetch: URLs, ``git@host:...``, ``github.com/org/repo``."""
    return bool(_URL_RE.search(path))


def normalize(path: str, *, base: str = "", file: str | None = None) -> str:
    """``path`` joined to ``base`` and normalised; refuses ``..`` out of the root, absolute paths and URLs.

    ``file`` names where the path was written, for the error message.
    """
    if is_remote(path):
        raise RepoPathError(f"remote resource {path!r} is refused: the hub does not fetch URLs", file=file)
    if path.startswith("/") or (len(path) > 1 and path[1] == ":" and path[0].isalpha()):
        raise RepoPathError(f"absolute path {path!r} is not allowed; use a path inside the repository",
                            file=file)
    joined = posixpath.normpath(posixpath.join(base, path)) if (base or path) else "."
    if joined == ".." or joined.startswith("../"):
        raise RepoPathError(f"path {path!r} escapes the repository root", file=file)
    return "" if joined == "." else joined


class DirectoryFS:
    """A plain directory as a :class:`RepoFS`; symlinks are followed only while they stay inside the root."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.path.realpath(os.fspath(root))
        if not os.path.isdir(self._root):
            raise RepoPathError(f"{os.fspath(root)} is not a directory")

    @property
    def revision(self) -> str:
        return f"dir:{self._root}"

    @property
    def root(self) -> str:
        return self._root

    def _real(self, path: str) -> str:
        rel = normalize(path)
        real = os.path.realpath(os.path.join(self._root, rel))
        if real != self._root and not real.startswith(self._root.rstrip(os.sep) + os.sep):
            raise RepoPathError(f"path {rel!r} is a symlink that escapes the repository root", file=rel)
        return real

    def read_bytes(self, path: str, *, max_bytes: int | None = None) -> bytes:
        real = self._real(path)
        try:
            with open(real, "rb") as handle:
                if max_bytes is None:
                    return handle.read()
                _check_size(os.fstat(handle.fileno()).st_size, max_bytes, normalize(path))
                data = handle.read(max_bytes + 1)  # the file may grow after the stat
                _check_size(len(data), max_bytes, normalize(path))
                return data
        except FileNotFoundError as exc:
            raise RepoPathError(f"file {normalize(path)!r} does not exist", file=normalize(path)) from exc
        except IsADirectoryError as exc:
            raise RepoPathError(f"{normalize(path)!r} is a directory, not a file",
                                file=normalize(path)) from exc

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(self._real(path))

    def is_file(self, path: str) -> bool:
        return os.path.isfile(self._real(path))

    def list_dir(self, path: str) -> list[str]:
        real = self._real(path)
        try:
            return sorted(os.listdir(real))
        except FileNotFoundError as exc:
            raise RepoPathError(f"directory {normalize(path)!r} does not exist", file=normalize(path)) from exc

    def tree_id(self, path: str) -> str:
        real = self._real(path)
        digest = hashlib.sha256()
        self._hash_into(digest, real, normalize(path), ())
        return digest.hexdigest()

    def _hash_into(self, digest: Any, real: str, rel: str, parents: tuple[str, ...]) -> None:
        try:
            info = os.stat(real)
        except FileNotFoundError as exc:
            raise RepoPathError(f"path {rel!r} does not exist", file=rel) from exc
        if stat.S_ISDIR(info.st_mode):
            if real in parents:
                raise RepoPathError(f"symlink {rel!r} loops back to a directory that contains it", file=rel)
            digest.update(b"d\0")
            for name in sorted(os.listdir(real)):
                child_rel = posixpath.join(rel, name) if rel else name
                digest.update(name.encode() + b"\0")
                self._hash_into(digest, self._real(child_rel), child_rel, (*parents, real))
            digest.update(b"\0end\0")
        else:
            # In chunks: a content id must not cost a whole big file in memory.
            digest.update(b"f\0" + str(info.st_size).encode() + b"\0")
            with open(real, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)


class TreeCache:
    """Entries of Git trees by object id, shared by the views of one repository's commits.

    A tree id names its content, so a tree read for one commit serves every later commit that
    still has it: a commit touching one overlay re-reads only the trees on that overlay's path
    (each read is a round trip to ``git cat-file``, ~0.3 ms). Least recently used trees go first.
    """

    def __init__(self, max_trees: int = 50_000) -> None:
        self.max_trees = max_trees
        self._entries: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def get(self, tree_id: str) -> dict[str, Any] | None:
        entries = self._entries.get(tree_id)
        if entries is not None:
            self._entries.move_to_end(tree_id)
        return entries

    def put(self, tree_id: str, entries: dict[str, Any]) -> None:
        self._entries[tree_id] = entries
        while len(self._entries) > self.max_trees:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class GitTreeFS:
    """The tree of one commit, read from the object database (GitPython objects, no checkout).

    Symlink blobs (mode 120000) are resolved inside the repository; a link that
    points outside it, or loops, is refused. ``trees``: a cache shared with other commits of the
    same repository (the view keeps one of its own otherwise).
    """

    def __init__(self, repo: git.Repo, commit: str, *, trees: TreeCache | None = None) -> None:
        self._repo = repo
        try:
            self._commit = repo.commit(commit)
            self._root = self._commit.tree  # GitPython resolves lazily: touch the tree to fail here
        except Exception as exc:  # gitdb and GitPython raise several types for an unknown rev
            raise RepoPathError(f"commit {commit!r} is not in the repository") from exc
        self._revision = str(self._commit.hexsha)
        # path -> (kind, object); GitPython object lookups are slow, and a build reads a path many times.
        self._cache: dict[str, tuple[str, Any, str]] = {"": ("tree", self._root, "")}
        self._trees = trees if trees is not None else TreeCache()

    @property
    def revision(self) -> str:
        return self._revision

    def _children(self, tree: Any, path: str) -> dict[str, Any]:
        key = str(tree.hexsha)
        entries = self._trees.get(key)
        if entries is None:
            if tree.size > MAX_TREE_BYTES:  # from the object header, before the entries are read
                raise LimitError(f"directory has a {tree.size}-byte Git tree, over the {MAX_TREE_BYTES}-byte limit",
                                 setting=None, file=path or ".")
            entries = {item.name: item for item in tree}
            self._trees.put(key, entries)
        return entries

    def _lookup(self, path: str, *, hops: int = 0) -> tuple[str, Any] | None:
        """(``"tree"`` or ``"blob"``, object) for ``path`` with symlinks resolved, or None if missing."""
        found = self._resolve(normalize(path), hops)
        return None if found is None else (found[0], found[1])

    def _resolve(self, rel: str, hops: int) -> tuple[str, Any, str] | None:
        """(kind, object, real path): a link's target is relative to the *real* directory holding it."""
        cached = self._cache.get(rel)
        if cached is not None:
            return cached
        parent, _, name = rel.rpartition("/")
        found = self._resolve(parent, hops)
        if found is None or found[0] != "tree":
            return None
        real_parent = found[2]
        item = self._children(found[1], parent).get(name)
        if item is None:
            return None
        real = f"{real_parent}/{name}" if real_parent else name
        result: tuple[str, Any, str] | None
        if item.mode == _SYMLINK_MODE:
            if hops >= _MAX_SYMLINK_HOPS:
                raise RepoPathError(f"symlink {rel!r} loops", file=rel)
            if item.size > _MAX_LINK_BYTES:
                raise RepoPathError(f"symlink {rel!r} has a {item.size}-byte target; refused", file=rel)
            target = item.data_stream.read().decode("utf-8", "surrogateescape")
            try:
                resolved = normalize(target, base=real_parent, file=rel)
            except RepoPathError as exc:
                raise RepoPathError(f"symlink {rel!r} -> {target!r} escapes the repository root",
                                    file=rel) from exc
            result = self._resolve(resolved, hops + 1)
        elif item.type == "tree":
            result = ("tree", item, real)
        elif item.type == "blob":
            result = ("blob", item, real)
        else:  # a submodule (commit entry): its content is not in this repository
            result = None
        if result is not None:
            self._cache[rel] = result
        return result

    def read_bytes(self, path: str, *, max_bytes: int | None = None) -> bytes:
        found = self._lookup(path)
        rel = normalize(path)
        if found is None:
            raise RepoPathError(f"file {rel!r} does not exist at {self._revision[:12]}", file=rel)
        if found[0] != "blob":
            raise RepoPathError(f"{rel!r} is a directory, not a file", file=rel)
        if max_bytes is not None:
            # The size is in the object header (`git cat-file --batch-check`): nothing is read yet.
            _check_size(found[1].size, max_bytes, rel)
        data: bytes = found[1].data_stream.read()
        return data

    def is_dir(self, path: str) -> bool:
        found = self._lookup(path)
        return found is not None and found[0] == "tree"

    def is_file(self, path: str) -> bool:
        found = self._lookup(path)
        return found is not None and found[0] == "blob"

    def list_dir(self, path: str) -> list[str]:
        found = self._lookup(path)
        rel = normalize(path)
        if found is None or found[0] != "tree":
            raise RepoPathError(f"directory {rel!r} does not exist at {self._revision[:12]}", file=rel)
        return sorted(self._children(found[1], rel))

    def tree_id(self, path: str) -> str:
        found = self._lookup(path)
        rel = normalize(path)
        if found is None:
            raise RepoPathError(f"path {rel!r} does not exist at {self._revision[:12]}", file=rel)
        return str(found[1].hexsha)


def _check_size(size: int, max_bytes: int, rel: str) -> None:
    if size > max_bytes:
        raise LimitError(f"is {size} bytes, over the {max_bytes}-byte limit", setting="max_file_bytes", file=rel)


class BoundedFS:
    """``fs`` with every read bounded to ``max_bytes`` (the smaller bound wins when a read names one), and
    all reads together to ``max_total_bytes`` (None: no total; a kustomize build's ``max_build_bytes``)."""

    def __init__(self, fs: RepoFS, *, max_bytes: int, max_total_bytes: int | None = None) -> None:
        self.fs = fs
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.total_read = 0

    @property
    def revision(self) -> str:
        return self.fs.revision

    def read_bytes(self, path: str, *, max_bytes: int | None = None) -> bytes:
        bound = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        if self.max_total_bytes is None:
            return self.fs.read_bytes(path, max_bytes=bound)
        remaining = max(0, self.max_total_bytes - self.total_read)
        try:
            data = self.fs.read_bytes(path, max_bytes=min(bound, remaining))
        except LimitError:
            if remaining >= bound:
                raise  # the file on its own is too big
            raise LimitError(f"the build reads more than {self.max_total_bytes} bytes in all",
                             setting="max_build_bytes", file=normalize(path)) from None
        self.total_read += len(data)
        return data

    def charge(self, path: str, size: int) -> None:
        """Count ``size`` bytes of ``path`` against the total without reading them (a parse cache hit), so
        whether a build fits does not depend on what other builds happened to read first."""
        if self.max_total_bytes is not None and self.total_read + size > self.max_total_bytes:
            raise LimitError(f"the build reads more than {self.max_total_bytes} bytes in all",
                             setting="max_build_bytes", file=normalize(path))
        self.total_read += size

    def is_dir(self, path: str) -> bool:
        return self.fs.is_dir(path)

    def is_file(self, path: str) -> bool:
        return self.fs.is_file(path)

    def list_dir(self, path: str) -> list[str]:
        return self.fs.list_dir(path)

    def tree_id(self, path: str) -> str:
        return self.fs.tree_id(path)


_MAX_DEPTH = 64


def _identity(fs: RepoFS, path: str) -> str:
    # A directory's identity, to spot a link back to one of its ancestors: its real path on disk,
    # or its Git tree id (a tree cannot contain itself, so an ancestor's id below it is a loop).
    if isinstance(fs, DirectoryFS):
        return os.path.realpath(os.path.join(fs.root, path))
    return fs.tree_id(path)


#: What :func:`materialize` writes at most: entries (files and directories) and bytes. Directory
#: symlinks that reach the same directory from many places (each level linking the previous one twice)
#: would otherwise copy one tree 2^N times.
MAX_MATERIALIZED_ENTRIES = 100_000
MAX_MATERIALIZED_BYTES = 256 * 1024 * 1024


def materialize(fs: RepoFS, dest: pathlib.Path, path: str = "", *, max_entries: int = MAX_MATERIALIZED_ENTRIES,
                max_bytes: int = MAX_MATERIALIZED_BYTES, _ancestors: tuple[str, ...] = (),
                _written: list[int] | None = None) -> None:
    """Write the tree under ``path`` (default: the whole repository) to ``dest``, symlinks resolved.

    ``.git``, links that leave the repository and links that loop are left out: the copy
    holds only what a build may read. A copy over ``max_entries`` entries or ``max_bytes`` bytes is
    refused with :class:`~hub.tree.errors.LimitError` (no file is read past the byte budget).
    """
    written = _written if _written is not None else [0, 0]  # entries, bytes
    identity = _identity(fs, path)
    if identity in _ancestors or len(_ancestors) > _MAX_DEPTH:
        raise RepoPathError(f"{path!r} loops back to a directory that contains it", file=path)
    _ancestors = (*_ancestors, identity)
    dest.mkdir(parents=True, exist_ok=True)
    for name in fs.list_dir(path):
        if name == ".git":
            continue
        child = posixpath.join(path, name) if path else name
        target = dest / name
        written[0] += 1
        if written[0] > max_entries:
            raise LimitError(f"copying the tree for an external build makes more than {max_entries} files and "
                             "directories (directory symlinks reaching the same tree many times?)",
                             setting=None, file=child)
        try:
            if fs.is_dir(child):
                materialize(fs, target, child, max_entries=max_entries, max_bytes=max_bytes,
                            _ancestors=_ancestors, _written=written)
            elif fs.is_file(child):
                try:
                    data = fs.read_bytes(child, max_bytes=max_bytes - written[1])
                except LimitError as exc:
                    raise LimitError(f"{exc.detail}; the copy for an external build holds at most {max_bytes} "
                                     "bytes in all", setting=exc.setting, file=child) from exc
                written[1] += len(data)
                target.write_bytes(data)
        except RepoPathError:
            continue
