"""The fallback: hand a kustomization outside the native subset to ``kustomize build`` or ``kubectl kustomize``.

The pipeline calls it only for a fleet whose fleet.yaml says ``render: {external: allow}``.
Every kustomization the build can reach is vetted first (:mod:`vetting`: paths, symlinks,
sizes, no URLs, no helm or plugins unless the hub's operator allowed them); the files it
vetted are then written, read from the revision being rendered (a Git revision has no
checkout), to a fresh temporary directory, and the tool runs there in a sandbox
(:mod:`sandboxing`: strictest load restrictor, no network, no inherited environment,
time, memory and output limits).
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from hub.render.kustomize import sandboxing, vetting
from hub.render.kustomize.kustomization import KUSTOMIZATION_FILENAMES
from hub.tree import repofs
from hub.tree.errors import KustomizeError, RepoPathError
from hub.tree.loading import load_yaml_documents

__all__ = ["default_command", "needed_root", "run_external"]

#: The tool's stderr quoted in an error at most (it can echo whole files).
_MAX_MESSAGE_CHARS = 2000


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

    ``convoy build DIR`` outside a Git working tree reads only that subtree. (An external build
    no longer copies a subtree: it gets exactly the files :mod:`vetting` checked.)
    """
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
                 synthetic: dict[str, Any] | None = None, policy: vetting.Policy = vetting.Policy(),
                 limits: sandboxing.Limits = sandboxing.Limits()) -> list[dict[str, Any]]:
    """Build ``directory`` (or the ``synthetic`` kustomization at the repository root) with ``command``.

    Every kustomization the build reaches is vetted first (:func:`vetting.vet_tree`); the tool then
    runs in a sandbox on a copy of exactly the vetted files (:mod:`sandboxing`).
    """
    where = "<layers>" if synthetic is not None else directory or "."
    vetted = vetting.vet_tree(fs, directory=None if synthetic is not None else directory, synthetic=synthetic,
                              policy=policy)
    tool = shutil.which(command[0])
    if tool is None:
        raise KustomizeError(f"external {' '.join(command)} could not run: {command[0]} is not on PATH", file=where)
    argv = [tool, *command[1:]]
    with tempfile.TemporaryDirectory(prefix="convoy-kustomize-") as tmp:
        base = pathlib.Path(tmp)
        root, home, scratch = base / "repo", base / "home", base / "tmp"
        for made in (root, home, scratch):
            made.mkdir(mode=0o700)
        sandboxing.write_tree(vetted.files, root)
        target = root / directory if directory else root
        if synthetic is not None:
            target = _place_synthetic(root, synthetic, vetted.files)
        argv += [str(target), "--load-restrictor", "LoadRestrictionsRootOnly"]
        if vetted.helm:  # vetting refused helm unless the operator allowed it
            helm = shutil.which("helm")
            if helm is None:
                raise KustomizeError("helm is allowed on this hub but not on its PATH", file=where)
            argv += ["--enable-helm", "--helm-command", helm]
        if vetted.plugins:  # likewise for plugins
            argv.append("--enable-alpha-plugins")
            if pathlib.Path(tool).name == "kustomize":
                argv.append("--enable-exec")
        try:
            proc = sandboxing.run_bounded([*sandboxing.isolation_prefix(), *argv], cwd=root,
                                          env=sandboxing.environment(home, scratch), limits=limits)
        except sandboxing.SandboxError as exc:
            raise KustomizeError(f"external {' '.join(command)} {exc}", file=where) from exc
        if proc.returncode != 0:
            message = (proc.stderr.decode("utf-8", "replace").strip().replace(str(root) + "/", "")
                       .replace(str(base), "<sandbox>"))
            if len(message) > _MAX_MESSAGE_CHARS:
                message = message[:_MAX_MESSAGE_CHARS] + " [...]"
            raise KustomizeError(f"external {' '.join(command)} failed: {message}", file=where)
        return load_yaml_documents(proc.stdout, file=f"output of {' '.join(command)}")


def _place_synthetic(root: pathlib.Path, synthetic: dict[str, Any], files: Mapping[str, bytes]) -> pathlib.Path:
    """Write the synthetic kustomization; return the directory to build.

    At the root when the copy has no kustomization file there (so file resources stay inside its
    directory for the RootOnly restrictor), else in a directory of its own with every path one level up.
    """
    if not any(name in files for name in KUSTOMIZATION_FILENAMES):
        (root / "kustomization.yaml").write_text(yaml.safe_dump(synthetic, sort_keys=False))
        return root
    target = root / ".convoy-layers"
    target.mkdir()
    relocated = dict(synthetic)
    for key in ("resources", "components"):
        if key in relocated:
            relocated[key] = [f"../{path}" if path else ".." for path in relocated[key]]
    (target / "kustomization.yaml").write_text(yaml.safe_dump(relocated, sort_keys=False))
    return target
