"""Extract the kustomize differential corpus (issue 16) from local Git mirrors of public repositories.

    python -m bench.tools.extract_kustomize_corpus MIRROR_DIR... [--out bench/kustomize_corpus]

Each MIRROR_DIR is a Git repository (bare or not) named ``OWNER+NAME`` (or its parent is, as in
``/work/.mirror/OWNER+NAME/repo``). For every kustomization directory at the mirror's HEAD the tool:

1. vets it with the hub's own vetting walk (``hub.render.kustomize.vetting``): remote resources, helm,
   plugins and files outside their kustomization's directory are refused, so what is kept builds
   offline with kustomize's default load restrictor, and the walk yields exactly the files it reads;
2. writes only those files to a scratch directory and runs ``kubectl kustomize`` on it there (so the
   copied file set is proved sufficient); a directory kubectl refuses (a Component, a deliberately
   broken test fixture, a missing file) is dropped;
3. copies the files under ``OUT/<NAME>/`` and lists the directory in ``OUT/index.yaml``.

Each repository gets a ``LICENSE-NOTICE`` (its license text, where it came from, the commit). Only
Apache-2.0 and MIT repositories are copied. ``--max-per-repo`` and ``--max-bytes-per-repo`` keep one
repository from dominating (and the corpus small).
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE.parents[1]) not in sys.path:
    sys.path.insert(0, str(HERE.parents[1]))

import yaml  # noqa: E402

from hub.render.kustomize import sandboxing, vetting  # noqa: E402
from hub.tree import repofs  # noqa: E402
from hub.tree.errors import RenderError  # noqa: E402

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
LICENSES = {"Apache License": "Apache-2.0", "MIT License": "MIT", "Permission is hereby granted": "MIT"}


def repo_name(mirror: pathlib.Path) -> tuple[str, str]:
    """(``owner/name``, short name) from ``.../OWNER+NAME[/repo]``."""
    part = mirror.name if "+" in mirror.name else mirror.parent.name
    owner, _, name = part.partition("+")
    return f"{owner}/{name}", name


def _git(mirror: pathlib.Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    # --git-dir: the mirrors are bare object stores without a config file, which GitPython misreads.
    return subprocess.run(["git", f"--git-dir={mirror}", *args], capture_output=True, check=False)


def _checkout(mirror: pathlib.Path, dest: pathlib.Path) -> None:
    """HEAD's files written under ``dest``; blobs the mirror lacks (its largest files) are left out."""
    entries = []
    for line in _git(mirror, "ls-tree", "-r", "-z", "HEAD").stdout.decode().split("\0"):
        if not line:
            continue
        meta, _, path = line.partition("\t")
        mode, kind, sha = meta.split()
        if kind == "blob":
            entries.append((mode, sha, path))
    batch = subprocess.run(["git", f"--git-dir={mirror}", "cat-file", "--batch"], capture_output=True,
                           input="".join(f"{sha}\n" for _, sha, _ in entries).encode(), check=False).stdout
    offset = 0
    for mode, _sha, path in entries:
        end = batch.index(b"\n", offset)
        header = batch[offset:end].split()
        offset = end + 1
        if header[-1] == b"missing":
            continue
        size = int(header[2])
        data = batch[offset:offset + size]
        offset += size + 1
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            target.symlink_to(data.decode())
        else:
            target.write_bytes(data)


def license_of(mirror: pathlib.Path) -> tuple[str, str] | None:
    for name in ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING"):
        proc = _git(mirror, "show", f"HEAD:{name}")
        if proc.returncode != 0:
            continue
        text = proc.stdout.decode(errors="replace")
        for marker, spdx in LICENSES.items():
            if marker in text[:2000]:
                return spdx, text
    return None


def kustomization_dirs(root: pathlib.Path) -> list[str]:
    paths = [str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()]
    return sorted({path.rpartition("/")[0] for path in paths if path.rpartition("/")[2] in KUSTOMIZATION_NAMES})


def kubectl_builds(files: dict[str, bytes], directory: str, kubectl: str) -> str | None:
    """None if ``kubectl kustomize`` builds ``directory`` from exactly ``files``, else the first error line."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        sandboxing.write_tree(files, root)
        try:
            proc = subprocess.run([kubectl, "kustomize", str(root / directory)], capture_output=True,
                                  timeout=120, check=False)
        except subprocess.TimeoutExpired:
            return "timed out"
        if proc.returncode != 0:
            return (proc.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[-1][:200]
        if not proc.stdout.strip():
            return "empty output"
    return None


def extract(mirror: pathlib.Path, out: pathlib.Path, *, kubectl: str, max_per_repo: int,
            max_bytes: int) -> list[str]:
    full, short = repo_name(mirror)
    found = license_of(mirror)
    if found is None:
        print(f"{full}: no Apache-2.0/MIT license at HEAD, skipped", file=sys.stderr)
        return []
    spdx, text = found
    with tempfile.TemporaryDirectory() as tmp:
        checkout = pathlib.Path(tmp)
        _checkout(mirror, checkout)
        kept, files = _extract_checkout(checkout, full, short, kubectl=kubectl, max_per_repo=max_per_repo,
                                        max_bytes=max_bytes)
    sandboxing.write_tree(files, out / short)
    sha = _git(mirror, "rev-parse", "HEAD").stdout.decode().strip()
    (out / short / "LICENSE-NOTICE").write_text(
        f"The files in this directory are copied unmodified from https://github.com/{full}\n"
        f"at commit {sha} (only the files that the listed kustomization directories read).\n"
        f"They are licensed under {spdx}; the license text follows.\n\n{text}\n")
    print(f"{full}: {len(kept)} directories, {len(files)} files", file=sys.stderr)
    return kept


def _extract_checkout(checkout: pathlib.Path, full: str, short: str, *, kubectl: str,
                      max_per_repo: int, max_bytes: int) -> tuple[list[str], dict[str, bytes]]:
    fs = repofs.DirectoryFS(checkout)
    passing: list[tuple[str, dict[str, bytes]]] = []
    for directory in kustomization_dirs(checkout):
        try:
            tree = vetting.vet_tree(fs, directory=directory, policy=vetting.Policy())
        except RenderError as exc:
            print(f"  skip {full}/{directory}: {exc}", file=sys.stderr)
            continue
        error = kubectl_builds(tree.files, directory, kubectl)
        if error is not None:
            print(f"  skip {full}/{directory}: kubectl: {error}", file=sys.stderr)
            continue
        passing.append((directory, tree.files))
    # An even spread over the repository, not its alphabetically first directories, within the byte budget.
    step = max(1.0, len(passing) / max_per_repo)
    spread = [passing[int(i * step)] for i in range(min(len(passing), max_per_repo))]
    kept: list[str] = []
    files: dict[str, bytes] = {}
    for directory, tree_files in spread:
        union = {**files, **tree_files}
        if sum(map(len, union.values())) > max_bytes:
            print(f"  skip {full}/{directory}: over the repository's byte budget", file=sys.stderr)
            continue
        kept.append(f"{short}/{directory}")
        files = union
    return kept, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mirrors", nargs="+", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=HERE.parent / "kustomize_corpus")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--max-per-repo", type=int, default=90)
    parser.add_argument("--max-bytes-per-repo", type=int, default=6_000_000,
                        help="copied bytes per repository (the whole corpus stays under 20 MB)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"directories": []}
    for mirror in args.mirrors:
        index["directories"].extend(extract(mirror, args.out, kubectl=args.kubectl, max_per_repo=args.max_per_repo,
                                             max_bytes=args.max_bytes_per_repo))
    index["directories"].sort()
    (args.out / "index.yaml").write_text(
        "# Kustomization directories of the differential corpus (bench/tools/extract_kustomize_corpus.py).\n"
        + yaml.safe_dump(index, sort_keys=False))
    print(f"{len(index['directories'])} directories in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
