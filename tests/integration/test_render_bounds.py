"""Issue 13 items 3 and 4: a hostile commit's symlinks, big files, multiplying kustomizations and
alias bombs fail only the clusters they reach, quickly, with one short line; nothing else stops.

Every bomb is generated here, in a throw-away Git repository; limits are set small where a limit is
what a test checks, so each test stays fast.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import git
import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.fleet import clusters
from hub.render import pipeline
from hub.tree import repofs
from tests.integration.hub_harness import commit_files, exponential_kustomization

FLEET = """\
apiVersion: convoy.dev/v1alpha1
kind: Fleet
apps:
  - name: good
    path: apps/good
    namespace: good
  - name: bomb
    path: apps/bomb
    namespace: bomb
    targets: {matchLabels: {env: prod}}
"""

FILES = {
    "fleet.yaml": FLEET,
    "apps/good/kustomization.yaml": "resources: [cm.yaml]\n",
    "apps/good/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\ndata: {k: v}\n",
    "apps/bomb/kustomization.yaml": "resources: [cm.yaml]\n",
    "apps/bomb/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata: {k: v}\n",
    "clusters/dev-1/cluster.yaml": "labels: {env: dev}\n",
    "clusters/prod-1/cluster.yaml": "labels: {env: prod}\n",
}


def _render(repo_dir: Path, sha: str = "HEAD", *, limits: pipeline.RenderLimits = pipeline.RenderLimits(),
            renderer: pipeline.Renderer | None = None) -> pipeline.FleetRender:
    fs = repofs.GitTreeFS(git.Repo(repo_dir), sha)
    renderer = renderer or pipeline.Renderer(limits=limits)
    return renderer.render_fleet(fs, clusters.all_clusters(clusters.declared_clusters(fs)))


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    repo_dir = tmp_path / "fleet"
    commit_files(repo_dir, FILES, "good fleet")
    return repo_dir





# -- item 3: symlinks ---------------------------------------------------------------------------------

def _symlink_out_of_the_repository(repo_dir: Path) -> str:
    (repo_dir / "clusters").mkdir(exist_ok=True)
    os.symlink("/etc", repo_dir / "clusters" / "evil")
    os.symlink("/etc/hostname", repo_dir / "clusters" / "dev-1" / "extra.yaml")  # unused: harmless
    return commit_files(repo_dir, {}, "symlink out of the repository")


def test_a_symlink_under_clusters_out_of_the_repository_fails_only_that_cluster(fleet_repo: Path) -> None:
    good = _render(fleet_repo)
    sha = _symlink_out_of_the_repository(fleet_repo)
    result = _render(fleet_repo, sha)
    assert result.fleet_error is None
    assert result.clusters["dev-1"].ok and result.clusters["dev-1"].digest == good.clusters["dev-1"].digest
    assert result.clusters["prod-1"].ok
    [error] = result.clusters["evil"].errors
    assert error.file is not None and "clusters/evil" in error.file
    assert "escapes the repository" in str(error) and "\n" not in str(error)


@pytest.mark.parametrize("rev", ["HEAD", None])
def test_convoy_validate_prints_the_symlink_error_without_a_traceback(fleet_repo: Path, rev: str | None) -> None:
    _symlink_out_of_the_repository(fleet_repo)
    args = ["validate", str(fleet_repo)] + (["--rev", rev] if rev else [])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "clusters/evil" in result.output and "escapes the repository" in result.output
    assert "1 of 3 clusters failed to render: evil" in result.output


# -- item 4: sizes --------------------------------------------------------------------------------------

def test_a_big_file_is_refused_from_its_git_header_without_being_read(fleet_repo: Path) -> None:
    big = b"# " + b"x" * (64 * 1024 * 1024) + b"\n"
    (fleet_repo / "apps/bomb/cm.yaml").write_bytes(big)
    (fleet_repo / "fleet.yaml").write_bytes(FLEET.encode() + big)
    sha = commit_files(fleet_repo, {}, "64 MB files")
    limits = pipeline.RenderLimits(max_file_bytes=1024 * 1024, max_fleet_file_bytes=1024 * 1024)

    tracemalloc.start()
    try:
        result = _render(fleet_repo, sha, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30 * 1024 * 1024, f"{peak} bytes allocated: the big file was read"
    assert result.fleet_error is not None
    assert str(result.fleet_error) == (f"fleet.yaml: is {len(FLEET) + len(big)} bytes, over the 1048576-byte "
                                       "limit (max_fleet_file_bytes)")

    commit_files(fleet_repo, {"fleet.yaml": FLEET}, "fleet.yaml fixed")
    tracemalloc.start()
    try:
        result = _render(fleet_repo, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30 * 1024 * 1024, f"{peak} bytes allocated: the big file was read"
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert error.app == "bomb" and error.file == "apps/bomb/cm.yaml"
    assert f"is {len(big)} bytes, over the 1048576-byte limit (max_file_bytes)" in error.message


def test_a_big_generator_file_is_refused(fleet_repo: Path) -> None:
    sha = commit_files(fleet_repo, {
        "apps/bomb/kustomization.yaml": "configMapGenerator:\n- name: big\n  files: [big.txt]\n",
        "apps/bomb/big.txt": "y" * 5000})
    result = _render(fleet_repo, sha, limits=pipeline.RenderLimits(max_file_bytes=4096))
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert "apps/bomb/big.txt" in str(error) and "over the 4096-byte limit" in str(error)


def test_what_one_build_reads_in_all_is_bounded(fleet_repo: Path) -> None:
    # Each file is under the per-file bound; together they are not.
    files = {f"apps/bomb/cm{i}.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n"
                                      f"data: {{k: {'w' * 3000}}}\n" for i in range(5)}
    files["apps/bomb/kustomization.yaml"] = f"resources: [{', '.join(f'cm{i}.yaml' for i in range(5))}]\n"
    sha = commit_files(fleet_repo, files)
    result = _render(fleet_repo, sha, limits=pipeline.RenderLimits(max_file_bytes=4096, max_build_bytes=10_000))
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert "the build reads more than 10000 bytes in all (max_build_bytes)" in str(error)
    assert _render(fleet_repo, sha, limits=pipeline.RenderLimits(max_file_bytes=4096)).clusters["prod-1"].ok


def test_a_huge_value_is_quoted_as_a_short_excerpt(fleet_repo: Path) -> None:
    sha = commit_files(fleet_repo, {"apps/bomb/kustomization.yaml":
                                    "resources: [cm.yaml]\ncommonLabels: {big: [" + "z" * 3_000_000 + "]}\n"})
    result = _render(fleet_repo, sha)
    [error] = result.clusters["prod-1"].errors
    assert "commonLabels.big must be a string" in error.message and "zzz" in error.message
    assert len(str(error)) < 600, len(str(error))


# -- item 4: shapes -------------------------------------------------------------------------------------

def test_an_exponential_kustomization_is_refused_by_the_object_bound_and_the_next_commit_renders(
        fleet_repo: Path) -> None:
    renderer = pipeline.Renderer(limits=pipeline.RenderLimits(max_bundle_objects=1000))
    sha = commit_files(fleet_repo, exponential_kustomization(18), "2^18 objects from 56 files")
    result = _render(fleet_repo, sha, renderer=renderer)
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert str(error).startswith("cluster prod-1: app bomb: ")
    assert "more than 1000 objects (max_bundle_objects)" in str(error)
    assert result.stats.seconds < 20

    fixed = commit_files(fleet_repo, {"apps/bomb/kustomization.yaml": "resources: [l3]\n"}, "small again")
    result = _render(fleet_repo, fixed, renderer=renderer)
    assert result.clusters["prod-1"].ok and result.clusters["prod-1"].object_count == 1 + 8


def test_a_render_that_runs_out_of_time_fails_that_cluster(fleet_repo: Path) -> None:
    limits = pipeline.RenderLimits(max_bundle_objects=10**9, max_render_seconds=0.5)
    sha = commit_files(fleet_repo, exponential_kustomization(18), "2^18 objects from 56 files")
    result = _render(fleet_repo, sha, limits=limits)
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert str(error).startswith("cluster prod-1: app bomb: ")
    assert "took longer than 0.5 s (max_render_seconds)" in str(error)
    assert result.stats.seconds < 20


def test_the_object_bound_counts_the_whole_bundle(fleet_repo: Path) -> None:
    many = "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n" for i in range(6))
    sha = commit_files(fleet_repo, {"apps/good/cm.yaml": many, "apps/bomb/cm.yaml": many})
    result = _render(fleet_repo, sha, limits=pipeline.RenderLimits(max_bundle_objects=10))
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert "12 objects, more than 10 (max_bundle_objects)" in str(error)


ALIAS_DOC = ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n")


def test_an_alias_bomb_spread_over_many_documents_is_refused(fleet_repo: Path) -> None:
    # Each document expands to ~11,000 nodes, far under a per-document cap; 200 of them make 2.2 million.
    docs = "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata:\n"
                   + "".join("  " + line + "\n" for line in ALIAS_DOC.splitlines()) for i in range(200))
    sha = commit_files(fleet_repo, {"apps/bomb/cm.yaml": docs})
    result = _render(fleet_repo, sha)
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert error.file == "apps/bomb/cm.yaml" and "alias" in error.message


def test_an_alias_bomb_in_fleet_yaml_is_a_fleet_error(fleet_repo: Path) -> None:
    bomb = "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 9))
    sha = commit_files(fleet_repo, {"fleet.yaml": FLEET + "metadata:\n" + "".join(
        "  " + line + "\n" for line in bomb.splitlines())})
    result = _render(fleet_repo, sha)
    assert result.fleet_error is not None and "alias" in str(result.fleet_error)


def test_anchors_in_a_big_ordinary_file_are_fine(fleet_repo: Path) -> None:
    # 120,000 distinct nodes and one small alias: nothing multiplies, so nothing is refused.
    data = "".join(f"    k{i}: v\n" for i in range(60_000))
    sha = commit_files(fleet_repo, {"apps/bomb/cm.yaml":
                                    "apiVersion: v1\nkind: ConfigMap\n"
                                    "metadata: {name: bomb, labels: &l {a: b}, annotations: *l}\n"
                                    "data:\n" + data})
    result = _render(fleet_repo, sha)
    assert result.clusters["prod-1"].ok, result.clusters["prod-1"].errors


def test_a_deeply_nested_value_fails_its_file_not_the_fleet(fleet_repo: Path) -> None:
    deep = "[" * 990 + "]" * 990
    sha = commit_files(fleet_repo, {"apps/bomb/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n"
                                                         f"data: {{k: {deep}}}\n"})
    result = _render(fleet_repo, sha)
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert error.file == "apps/bomb/cm.yaml" and "nests deeper than 128 levels" in error.message


def test_an_unexpected_exception_costs_one_cluster(fleet_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.fleet import resolving

    plan = resolving.plan_cluster

    def plan_or_crash(fs: repofs.RepoFS, fleet: object, *, name: str, labels: dict[str, str],
                      **options: object) -> object:
        if name == "prod-1":
            raise RecursionError("maximum recursion depth exceeded")
        return plan(fs, fleet, name=name, labels=labels, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(resolving, "plan_cluster", plan_or_crash)
    result = _render(fleet_repo)
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert "unexpected RecursionError while rendering (a bug in Convoy" in str(error)


def test_a_big_variable_substituted_many_times_is_refused_early(fleet_repo: Path) -> None:
    # 100 KB of value, referenced 1,000 times: 100 MB of strings before the bundle's own size check.
    refs = "${big}" * 1000
    sha = commit_files(fleet_repo, {
        "clusters/prod-1/cluster.yaml": "labels: {env: prod}\nvars: {big: " + "v" * 100_000 + "}\n",
        "apps/bomb/cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb}}\ndata: {{k: '{refs}'}}\n"})
    tracemalloc.start()
    try:
        result = _render(fleet_repo, sha, limits=pipeline.RenderLimits(max_bundle_bytes=1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30 * 1024 * 1024, peak
    assert result.clusters["dev-1"].ok
    [error] = result.clusters["prod-1"].errors
    assert error.app == "bomb" and "ConfigMap/bomb/bomb: data.k: substituted values add more than 1048576" in str(error)


def test_many_slow_clusters_cannot_hold_a_commit_for_long(fleet_repo: Path) -> None:
    # Three clusters, each with a build of its own that runs into the per-cluster deadline (1 s): after
    # two of them the commit's budget (1.5 s) is spent and the third is not rendered at all.
    files: dict[str, str] = {"fleet.yaml": "apiVersion: convoy.dev/v1alpha1\nkind: Fleet\napps:\n" + "".join(
        f"  - {{name: bomb{i}, path: apps/bomb{i}, namespace: b, targets: {{matchLabels: {{n: '{i}'}}}}}}\n"
        for i in range(3))}
    for i in range(3):
        files[f"clusters/c{i}/cluster.yaml"] = f"labels: {{n: '{i}'}}\n"
        files.update({name.replace("apps/bomb/", f"apps/bomb{i}/"): text
                      for name, text in exponential_kustomization(18).items()})
    commit_files(fleet_repo, {"clusters/dev-1/cluster.yaml": None, "clusters/prod-1/cluster.yaml": None, **files})
    limits = pipeline.RenderLimits(max_bundle_objects=10**9, max_render_seconds=1.0, max_fleet_render_seconds=1.5)
    result = _render(fleet_repo, limits=limits)
    messages = [str(result.clusters[f"c{i}"].errors[0]) for i in range(3)]
    assert all("max_render_seconds" in message for message in messages[:2]), messages
    assert messages[2] == ("cluster c2: not rendered: this commit's render took longer than 1.5 s "
                           "(max_fleet_render_seconds)")
