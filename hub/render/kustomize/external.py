"""The fallback: hand a kustomization outside the native subset to ``kustomize build`` or ``kubectl kustomize``.

The tree is materialised from the :class:`~hub.render.repofs.RepoFS` into a
temporary directory (the external tool needs files, and a Git revision has no
checkout), so the tool sees exactly the revision being rendered and nothing
outside the repository.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

import yaml

from hub.render import repofs
from hub.render.errors import KustomizeError, RepoPathError
from hub.render.kustomize.loading import load_yaml_documents

__all__ = ["default_command", "needed_root", "run_external"]

_TIMEOUT_SECONDS = 300


def default_command() -> tuple[str, ...] | None:
    """``kustomize build`` if on PATH, else ``kubectl kustomize``, else None."""
    if shutil.which("kustomize"):
        return ("kustomize", "build")
    if shutil.which("kubectl"):
        return ("kubectl", "kustomize")
    return None


def _common(a: str, b: str) -> str:
    parts = []
    for x, y in zip(a.split("/") if a else [], b.split("/") if b else [], strict=False):
        if x != y:
            break
        parts.append(x)
    return "/".join(parts)


def needed_root(fs: repofs.RepoFS, starts: Sequence[str]) -> str:
    """The deepest directory holding every kustomization reachable from ``starts`` and what they name.

    Only that subtree is materialised for the external tool: a fleet repository (or the Git
    working tree around ``convoy build DIR``) can be far bigger than one app.
    """
    from hub.render.kustomize.kustomization import KUSTOMIZATION_FILENAMES

    root: str | None = None
    seen: set[str] = set()
    queue = list(starts)
    while queue:
        directory = queue.pop()
        if directory in seen:
            continue
        seen.add(directory)
        root = directory if root is None else _common(root, directory)
        if not fs.is_dir(directory):
            parent = directory.rpartition("/")[0]
            root = _common(root, parent)
            continue
        for name in KUSTOMIZATION_FILENAMES:
            file = f"{directory}/{name}" if directory else name
            if not fs.is_file(file):
                continue
            try:
                raw = yaml.safe_load(fs.read_bytes(file)) or {}
            except (yaml.YAMLError, RepoPathError):
                continue
            if not isinstance(raw, dict):
                continue
            for key in ("resources", "bases", "components"):
                for entry in raw.get(key) or []:
                    if not isinstance(entry, str) or repofs.is_remote(entry):
                        continue
                    try:
                        queue.append(repofs.normalize(entry, base=directory))
                    except RepoPathError:
                        continue
            break
    return root or ""


def run_external(fs: repofs.RepoFS, command: Sequence[str], *, directory: str,
                 synthetic: dict[str, Any] | None = None, enable_helm: bool = False,
                 max_output_bytes: int = 256 * 1024 * 1024) -> list[dict[str, Any]]:
    """Build ``directory`` (or the ``synthetic`` kustomization at the repository root) with ``command``."""
    with tempfile.TemporaryDirectory(prefix="convoy-kustomize-") as tmp:
        root = pathlib.Path(tmp) / "repo"
        starts = [directory] if synthetic is None else [
            repofs.normalize(path) for key in ("resources", "components") for path in synthetic.get(key, [])]
        subtree = needed_root(fs, starts)
        repofs.materialize(fs, root / subtree if subtree else root, subtree)
        target = root / directory if directory else root
        if synthetic is not None:
            # A directory of its own, so a kustomization already at the root is not overwritten; every
            # path in the synthetic one is relative to the root, hence the "../".
            target = root / ".convoy-layers"
            target.mkdir()
            relocated = dict(synthetic)
            for key in ("resources", "components"):
                if key in relocated:
                    relocated[key] = [f"../{path}" if path else ".." for path in relocated[key]]
            (target / "kustomization.yaml").write_text(yaml.safe_dump(relocated, sort_keys=False))
        argv = [*command, str(target)]
        if enable_helm:
            argv.append("--enable-helm")
        env = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "TMPDIR", "LANG"}}
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT_SECONDS, cwd=tmp, env=env,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KustomizeError(f"external {' '.join(command)} could not run: {exc}",
                                 file=directory or ".") from exc
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip().replace(tmp + "/repo/", "")
            raise KustomizeError(f"external {' '.join(command)} failed: {message}", file=directory or ".")
        if len(proc.stdout) > max_output_bytes:
            raise KustomizeError(f"external {' '.join(command)} output is over {max_output_bytes} bytes",
                                 file=directory or ".")
        return load_yaml_documents(proc.stdout, file=f"output of {' '.join(command)}")
