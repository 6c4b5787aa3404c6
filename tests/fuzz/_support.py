"""Shared parts of the fuzz targets: an in-memory RepoFS, the packed-tree format and the atheris entry point.

A packed tree is one byte string holding several files, each introduced by a ``=== <path>`` line::

    === app/kustomization.yaml
    resources: [deploy.yaml]
    === app/deploy.yaml
    kind: Deployment
    ...

so a seed is readable, and the fuzzer's mutations change paths, structure and content alike.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys
from collections.abc import Callable, Mapping

from hub.tree import repofs
from hub.tree.errors import LimitError, RenderError, RepoPathError

__all__ = ["CORPUS", "MemoryFS", "main", "pack_tree", "unpack_tree"]

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
_HEADER = b"=== "


def unpack_tree(data: bytes) -> dict[str, bytes]:
    """Files of a packed tree by path (later blocks win; text before the first header is dropped)."""
    files: dict[str, bytes] = {}
    for block in (b"\n" + data).split(b"\n" + _HEADER)[1:]:
        header, _, content = block.partition(b"\n")
        files[header.decode("utf-8", "replace").strip()] = content
    return files


def pack_tree(files: Mapping[str, bytes]) -> bytes:
    return b"".join(_HEADER + path.encode() + b"\n" + content.rstrip(b"\n") + b"\n"
                    for path, content in sorted(files.items()))


class MemoryFS:
    """A :class:`~hub.render.repofs.RepoFS` over a dict of files, with the errors of the real views.

    Paths that the real views would refuse (``..``, absolute, URLs) are dropped from the tree, as is a
    file under a path that is already a file: Git cannot hold either.
    """

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files: dict[str, bytes] = {}
        self._dirs: dict[str, set[str]] = {"": set()}
        for path, content in files.items():
            try:
                rel = repofs.normalize(path)
            except RenderError:
                continue
            parts = rel.split("/")
            parents = ["/".join(parts[:index]) for index in range(len(parts))]
            if not rel or rel in self._dirs or any(parent in self._files for parent in parents):
                continue
            self._files[rel] = content
            for index, parent in enumerate(parents):
                self._dirs.setdefault(parent, set()).add(parts[index])
        self._revision = "mem:" + hashlib.sha256(pack_tree(self._files)).hexdigest()

    @property
    def revision(self) -> str:
        return self._revision

    def read_bytes(self, path: str, *, max_bytes: int | None = None) -> bytes:
        rel = repofs.normalize(path)
        if rel in self._dirs:
            raise RepoPathError(f"{rel!r} is a directory, not a file", file=rel)
        if rel not in self._files:
            raise RepoPathError(f"file {rel!r} does not exist", file=rel)
        data = self._files[rel]
        if max_bytes is not None and len(data) > max_bytes:
            raise LimitError(f"is {len(data)} bytes, over the {max_bytes}-byte limit", setting="max_file_bytes",
                             file=rel)
        return data

    def is_dir(self, path: str) -> bool:
        return repofs.normalize(path) in self._dirs

    def is_file(self, path: str) -> bool:
        return repofs.normalize(path) in self._files

    def list_dir(self, path: str) -> list[str]:
        rel = repofs.normalize(path)
        if rel not in self._dirs:
            raise RepoPathError(f"directory {rel!r} does not exist", file=rel)
        return sorted(self._dirs[rel])

    def tree_id(self, path: str) -> str:
        rel = repofs.normalize(path)
        if rel in self._files:
            return hashlib.sha256(b"f\0" + self._files[rel]).hexdigest()
        if rel not in self._dirs:
            raise RepoPathError(f"path {rel!r} does not exist", file=rel)
        digest = hashlib.sha256(b"d\0")
        for name in sorted(self._dirs[rel]):
            digest.update(name.encode() + b"\0" + self.tree_id(f"{rel}/{name}" if rel else name).encode())
        return digest.hexdigest()


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under atheris with libFuzzer's command line (corpus dirs, -runs=, ...)."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
