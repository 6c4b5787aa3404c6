"""Kustomize differential corpus (issue 16): the native engine against ``kubectl kustomize`` on real repositories.

    python -m bench.bench_kustomize_corpus [--record]   (or: python -m bench --only kustomize_corpus)

Every directory listed in ``bench/kustomize_corpus/index.yaml`` (kustomization directories copied
from public repositories by ``bench/tools/extract_kustomize_corpus.py``; each builds offline with
``kubectl kustomize``) is built twice: natively, in-process and native-only (what ``convoy build
--native-only DIR`` runs, without the process start), and by ``kubectl kustomize DIR``. Outputs are
compared as parsed YAML (same objects, same order). Printed: directories, native share, equal share
(equal among all directories: a non-native one counts as not equal), every non-native and unequal
directory with its reason, the causes tallied, and the speed-up of the native engine over kubectl on
the directories it builds (sum of kubectl times / sum of native times). The scale is ignored: the
corpus is the corpus.

``--record`` writes what ``tests/integration/test_kustomize_corpus.py`` checks against: the failing
directories with their reasons (:data:`KNOWN_FAILURES`, a list that may only shrink) and a digest of
kubectl's output for every directory (:data:`DIGESTS`), so CI compares every native build with kubectl's
recorded result and asks the live kubectl only for a sample.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import yaml  # noqa: E402

from hub.render.kustomize import BuildOptions, build, load_yaml_documents  # noqa: E402
from hub.tree import repofs  # noqa: E402
from hub.tree.errors import RenderError, UnsupportedFeatureError  # noqa: E402

CORPUS = HERE / "kustomize_corpus"
#: Directory -> sha256 of kubectl kustomize's parsed output (:func:`digest`), with the kubectl version.
DIGESTS = CORPUS / "kubectl-digests.yaml"
#: Directory -> why it misses the target today; the corpus test's expected failures.
KNOWN_FAILURES = HERE.parent / "tests" / "testdata" / "kustomize_corpus_known_failures.yaml"


def directories() -> list[str]:
    """The corpus's kustomization directories, relative to :data:`CORPUS`."""
    index = yaml.safe_load((CORPUS / "index.yaml").read_text())
    return list(index["directories"])


@dataclass(frozen=True)
class Outcome:
    """One directory built both ways."""

    directory: str
    #: None when the native engine built it, else why not ("vars in x/kustomization.yaml", "refused: ...").
    non_native: str | None
    #: None when both outputs are equal (only meaningful when built natively), else the first difference.
    unequal: str | None
    native_seconds: float
    kubectl_seconds: float

    @property
    def failure(self) -> str | None:
        """Why this directory misses the target (non-native or unequal), None when it meets it."""
        if self.non_native is not None:
            return f"non-native: {self.non_native}"
        if self.unequal is not None:
            return f"unequal: {self.unequal}"
        return None


def build_native(directory: str) -> tuple[list[dict[str, Any]] | None, str | None, float]:
    """(objects, None, seconds) or (None, why it is not native, seconds)."""
    started = time.perf_counter()
    try:
        result = build(repofs.DirectoryFS(CORPUS), directory, options=BuildOptions(allow_external=False))
    except UnsupportedFeatureError as exc:
        return None, f"{exc.feature} in {exc.file}", time.perf_counter() - started
    except RenderError as exc:
        return None, f"refused: {exc}", time.perf_counter() - started
    return result.objects, None, time.perf_counter() - started


def build_kubectl(directory: str, kubectl: str) -> tuple[list[dict[str, Any]], float]:
    started = time.perf_counter()
    proc = subprocess.run([kubectl, "kustomize", str(CORPUS / directory)], capture_output=True, check=False,
                          timeout=120)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{directory}: kubectl kustomize failed: {proc.stderr.decode(errors='replace')[-300:]}")
    # The engine's own loader: like kustomize, it keeps timestamps as strings.
    return load_yaml_documents(proc.stdout, file=f"kubectl kustomize {directory}"), seconds


def digest(objects: list[dict[str, Any]]) -> str:
    """A digest of parsed objects: equal digests iff equal objects in the same order (key order aside)."""
    text = json.dumps(objects, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def kubectl_version(kubectl: str) -> str:
    proc = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, check=False)
    try:
        return str(json.loads(proc.stdout)["kustomizeVersion"])
    except (ValueError, KeyError):
        return "unknown"


def _object_id(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace') or ''}/{meta.get('name')}"


def _first_path(a: Any, b: Any, path: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b or a[key] != b[key]:
                if key not in a:
                    return f"{path}.{key} only in kubectl's"
                if key not in b:
                    return f"{path}.{key} only in native"
                return _first_path(a[key], b[key], f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_path(x, y, f"{path}[{i}]")
    return f"{path}: native {json.dumps(a, default=str)[:80]} vs kubectl {json.dumps(b, default=str)[:80]}"


def difference(native: list[dict[str, Any]], expected: list[dict[str, Any]]) -> str | None:
    """None if equal, else one line saying where the two outputs first differ."""
    if native == expected:
        return None
    ids, expected_ids = [_object_id(o) for o in native], [_object_id(o) for o in expected]
    if ids != expected_ids:
        if sorted(ids) == sorted(expected_ids):
            return "same objects in a different order"
        missing = [i for i in expected_ids if i not in ids][:2]
        extra = [i for i in ids if i not in expected_ids][:2]
        return f"different objects: kubectl only {missing}, native only {extra}"
    for obj, want in zip(native, expected, strict=True):
        if obj != want:
            return f"{_object_id(want)}: {_first_path(obj, want, '')}"
    return "different"  # pragma: no cover - unreachable: unequal lists differ somewhere


def run_one(directory: str, kubectl: str) -> tuple[Outcome, str]:
    """The outcome, and the digest of kubectl's output."""
    objects, non_native, native_seconds = build_native(directory)
    expected, kubectl_seconds = build_kubectl(directory, kubectl)
    unequal = difference(objects, expected) if objects is not None else None
    return Outcome(directory, non_native, unequal, native_seconds, kubectl_seconds), digest(expected)


def cause(outcome: Outcome) -> str:
    """The failure's cause for tallying: the feature, or the kind of refusal or difference."""
    if outcome.non_native is not None:
        return outcome.non_native.split(" in ")[0] if not outcome.non_native.startswith("refused") else "refused"
    return "unequal"


def main(scale: str = "small", *, record: bool = False) -> dict[str, Any]:
    del scale  # the corpus has one size
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl is not on PATH: it is the oracle")
    runs = [run_one(directory, kubectl) for directory in directories()]
    outcomes = [outcome for outcome, _ in runs]
    total = len(outcomes)
    native = [o for o in outcomes if o.non_native is None]
    equal = [o for o in native if o.unequal is None]
    failures = [o for o in outcomes if o.failure is not None]
    native_time = sum(o.native_seconds for o in native)
    kubectl_time = sum(o.kubectl_seconds for o in native)
    speedup = kubectl_time / native_time if native_time else 0.0
    by_repo = collections.Counter(o.directory.split("/")[0] for o in outcomes)
    causes = collections.Counter(cause(o) for o in failures)
    print(f"directories: {total} ({', '.join(f'{repo} {n}' for repo, n in sorted(by_repo.items()))})")
    print(f"native: {len(native)}/{total} = {100 * len(native) / total:.1f} %")
    print(f"equal to kubectl: {len(equal)}/{total} = {100 * len(equal) / total:.1f} % "
          f"({len(equal)}/{len(native)} of the native builds)")
    print(f"native render {native_time:.2f} s vs kubectl kustomize {kubectl_time:.2f} s on the {len(native)} "
          f"native directories: {speedup:.0f}x faster")
    print("failures by cause: " + ", ".join(f"{c} {n}" for c, n in causes.most_common()))
    for outcome in failures:
        print(f"  {outcome.directory}: {outcome.failure}")
    if record:
        KNOWN_FAILURES.write_text(
            "# Corpus directories that do not yet build natively and equal to kubectl kustomize (issue 16).\n"
            "# Written by `python -m bench.bench_kustomize_corpus --record`; the list may only shrink:\n"
            "# tests/integration/test_kustomize_corpus.py fails when a listed directory starts passing.\n"
            + yaml.safe_dump({o.directory: o.failure for o in failures}, sort_keys=True, width=200))
        DIGESTS.write_text(
            "# sha256 of `kubectl kustomize DIR` output, parsed (bench.bench_kustomize_corpus.digest).\n"
            "# Written by `python -m bench.bench_kustomize_corpus --record`.\n"
            + yaml.safe_dump({"kustomizeVersion": kubectl_version(kubectl),
                              "digests": {o.directory: d for o, d in runs}}, sort_keys=True, width=200))
    return {"directories": total, "native": len(native), "equal": len(equal),
            "native_share": round(len(native) / total, 4), "equal_share": round(len(equal) / total, 4),
            "native_seconds": round(native_time, 3), "kubectl_seconds": round(kubectl_time, 3),
            "speedup": round(speedup, 1), "causes": dict(causes.most_common())}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true",
                        help="write the failing directories with their reasons and kubectl's output digests "
                             "(what the corpus test checks against)")
    args = parser.parse_args()
    print(json.dumps(main(record=args.record), indent=2))
