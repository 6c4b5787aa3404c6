"""The differential kustomize corpus (issue 16): real repositories' kustomizations, native against kubectl.

Every directory of ``bench/kustomize_corpus/index.yaml`` must build natively and equal ``kubectl
kustomize`` (parsed: same objects in the same order), except those listed with their reason in
``tests/testdata/kustomize_corpus_known_failures.yaml``. That list may only shrink: a listed directory
that starts passing fails the test until it is removed from the list.

kubectl takes about half a second per directory on the CI machine, too slow for ~300 directories on
every run, so each native build is compared with kubectl's recorded output digest
(``bench/kustomize_corpus/kubectl-digests.yaml``), a spread sample of directories is checked against
the live kubectl (which also proves the recorded digests still hold), and a mismatch asks the live
kubectl for the exact difference. ``python -m bench.bench_kustomize_corpus --record`` rewrites both files.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from bench import bench_kustomize_corpus as corpus

KNOWN_FAILURES: dict[str, str] = yaml.safe_load(corpus.KNOWN_FAILURES.read_text()) or {}
RECORDED: dict[str, str] = yaml.safe_load(corpus.DIGESTS.read_text())["digests"]
DIRECTORIES = corpus.directories()
#: Every this-many-th directory is also built by the live kubectl.
LIVE_SAMPLE_STEP = 12


def test_corpus_is_real_sized_licensed_and_small() -> None:
    repositories = {directory.split("/")[0] for directory in DIRECTORIES}
    assert len(DIRECTORIES) >= 250 and len(repositories) >= 6
    for repository in repositories:
        assert "License" in (corpus.CORPUS / repository / "LICENSE-NOTICE").read_text()
    assert all((corpus.CORPUS / directory).is_dir() for directory in DIRECTORIES)
    size = sum(path.stat().st_size for path in corpus.CORPUS.rglob("*") if path.is_file())
    assert size < 20_000_000


def test_every_directory_has_a_recorded_kubectl_digest_and_failures_are_corpus_directories() -> None:
    assert sorted(set(DIRECTORIES) ^ set(RECORDED)) == []
    assert sorted(set(KNOWN_FAILURES) - set(DIRECTORIES)) == []


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_corpus_directory_builds_natively_and_equals_kubectl(directory: str) -> None:
    objects, non_native, _ = corpus.build_native(directory)
    if objects is None:
        failure: str | None = f"non-native: {non_native}"
    else:
        failure = None if corpus.digest(objects) == RECORDED[directory] else "unequal"
    if directory in KNOWN_FAILURES:
        assert failure is not None, (f"{directory} now builds natively and equals kubectl: remove it from "
                                     f"{corpus.KNOWN_FAILURES.name}")
        return
    if failure == "unequal":  # ask the live oracle where, for a useful message
        kubectl = shutil.which("kubectl")
        if kubectl is not None and objects is not None:
            failure = corpus.difference(objects, corpus.build_kubectl(directory, kubectl)[0]) or (
                "kubectl now agrees but its recorded digest does not: re-record with "
                "python -m bench.bench_kustomize_corpus --record")
    assert failure is None, f"{directory}: {failure}"


@pytest.mark.kubectl
@pytest.mark.parametrize("directory", DIRECTORIES[::LIVE_SAMPLE_STEP])
def test_recorded_digest_is_what_kubectl_builds(directory: str, kubectl: str) -> None:
    expected, _ = corpus.build_kubectl(directory, kubectl)
    assert corpus.digest(expected) == RECORDED[directory], (
        f"kubectl kustomize {directory} no longer gives the recorded output (another kubectl version?): "
        "re-record with python -m bench.bench_kustomize_corpus --record")
