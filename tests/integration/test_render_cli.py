"""`convoy render`, `validate` and `preview` on real Git repositories made by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hub.cli import cli
from protos import bundle
from tests.integration.hub_harness import commit_files, sample_repo


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    repo, _ = sample_repo(tmp_path)
    return Path(repo.working_dir)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_render_prints_the_bundle_and_its_digest_as_yaml(repo_dir: Path) -> None:
    code, out, _ = _run("render", "--repo", str(repo_dir), "--rev", "HEAD", "--cluster", "prod-eu-1")
    assert code == 0
    header = dict(line[2:].split(": ", 1) for line in out.splitlines()[:3])
    document = yaml.safe_load(out)
    assert header["digest"] == bundle.digest_of(bundle.encode(document))
    assert header["objects"] == str(len(document["objects"]))
    assert [app["name"] for app in document["apps"]] == ["platform", "widgets", "web"]


def test_render_json_and_the_same_digest_from_the_working_tree(repo_dir: Path) -> None:
    code, out, _ = _run("render", "--repo", str(repo_dir), "--rev", "HEAD", "--cluster", "dev-eu-1", "-o", "json")
    assert code == 0
    document = json.loads(out)
    assert document["digest"] == bundle.digest_of(bundle.encode(document["bundle"]))
    code, out2, _ = _run("render", "--repo", str(repo_dir), "--cluster", "dev-eu-1", "-o", "json")
    assert code == 0 and json.loads(out2)["digest"] == document["digest"]


def test_render_an_unknown_cluster_with_labels_and_from_a_url(repo_dir: Path) -> None:
    code, out, _ = _run("render", "--repo", f"file://{repo_dir}", "--cluster", "prod-sa-9",
                        "--labels", "env=prod,region=us", "-o", "json")
    assert code == 0, out
    data = json.loads(out)["bundle"]
    config = next(o for o in data["objects"] if o["kind"] == "ConfigMap")
    assert config["data"]["CLUSTER_NAME"] == "prod-sa-9" and config["data"]["DATA_LOCATION"] == "us-storage"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--cluster", "nope"], "cluster nope: unknown: not declared under clusters/"),
        (["--cluster", "dev-eu-1", "--rev", "no-such-branch"], "no branch, tag or commit named 'no-such-branch'"),
        (["--cluster", "dev-eu-1", "--labels", "env"], "not key=value"),
    ],
)
def test_render_errors_are_one_line_and_exit_1(repo_dir: Path, args: list[str], fragment: str) -> None:
    code, out, err = _run("render", "--repo", str(repo_dir), *args)
    assert code == 1 and out == ""
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_render_a_cluster_with_a_render_error(repo_dir: Path) -> None:
    commit_files(repo_dir, {"apps/web/base/service.yaml": "kind: [\n"})
    code, _, err = _run("render", "--repo", str(repo_dir), "--rev", "HEAD", "--cluster", "dev-eu-1")
    assert code == 1
    assert "cluster dev-eu-1: app web: apps/web/base/service.yaml: invalid YAML" in err


def test_render_a_missing_directory(tmp_path: Path) -> None:
    code, _, err = _run("render", "--repo", str(tmp_path / "absent"), "--cluster", "x")
    assert code == 1 and "no such directory" in err


def test_validate_prints_a_table_and_passes_on_a_clean_fleet(repo_dir: Path) -> None:
    code, out, _ = _run("validate", str(repo_dir), "--rev", "HEAD")
    assert code == 0, out
    for name in ("dev-eu-1", "staging-eu-1", "prod-eu-1", "prod-us-1", "prod-ap-1"):
        line = next(line for line in out.splitlines() if name in line)
        assert "platform,widgets,web" in line and "11" in line


def test_validate_fails_when_any_cluster_fails(repo_dir: Path) -> None:
    text = (repo_dir / "clusters/prod-ap-1/cluster.yaml").read_text()
    commit_files(repo_dir, {"clusters/prod-ap-1/cluster.yaml": text + "colour: blue\n"})
    code, out, err = _run("validate", str(repo_dir), "--rev", "HEAD")
    assert code == 1
    assert "colour: unknown field" in out
    assert "1 of 5 clusters failed to render: prod-ap-1" in err


def test_validate_a_broken_fleet_yaml(repo_dir: Path) -> None:
    commit_files(repo_dir, {"fleet.yaml": "apiVersion: convoy.dev/v1alpha1\nkind: Fleet\napps: 3\n"})
    code, _, err = _run("validate", str(repo_dir))
    assert code == 1 and "fleet.yaml: apps: must be a list" in err


def test_preview_lists_which_clusters_change_and_how(repo_dir: Path) -> None:
    base = commit_files(repo_dir, {"README.md": "base\n"})
    overlay = repo_dir / "apps/web/overlays/region/us/kustomization.yaml"
    head = commit_files(repo_dir, {
        str(overlay.relative_to(repo_dir)): overlay.read_text().replace("us-storage", "us-east-storage"),
        "apps/web/base/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
        "apps/web/base/kustomization.yaml": (repo_dir / "apps/web/base/kustomization.yaml").read_text()
        .replace("  - service.yaml\n", "  - service.yaml\n  - extra.yaml\n")})
    code, out, _ = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head)
    assert code == 0, out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and "-1" in line.split()[0]}
    assert rows["prod-us-1"][1] == "changed"
    assert rows["prod-us-1"][2] == "1"  # one object added (extra) ...
    assert all("changed" in rows[name] for name in rows)
    assert "5 of 5 clusters change" in out

    code, out, _ = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head, "--diff")
    assert code == 0
    assert "=== cluster prod-us-1 (changed) ===" in out
    assert "-  DATA_LOCATION: us-storage" in out and "+  DATA_LOCATION: us-east-storage" in out
    assert "+++ head/ConfigMap/shop/extra" in out


def test_preview_of_an_unchanged_fleet(repo_dir: Path) -> None:
    base = commit_files(repo_dir, {"README.md": "one\n"})
    head = commit_files(repo_dir, {"README.md": "two\n"})
    code, out, _ = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head, "--diff")
    assert code == 0 and "0 of 5 clusters change" in out and "===" not in out


def test_preview_fails_when_the_head_breaks_a_cluster(repo_dir: Path) -> None:
    base = commit_files(repo_dir, {"README.md": "one\n"})
    head = commit_files(repo_dir, {"apps/web/overlays/env/prod/kustomization.yaml": "replicas: {\n"})
    code, out, err = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head)
    assert code == 1
    assert "the head revision fails to render for: prod-ap-1, prod-eu-1, prod-us-1" in err
    assert "error" in out


def test_preview_from_a_url_with_new_and_removed_clusters(repo_dir: Path) -> None:
    base = commit_files(repo_dir, {"README.md": "one\n"})
    head = commit_files(repo_dir, {"clusters/prod-us-1/cluster.yaml": None,
                                   "clusters/prod-us-2/cluster.yaml": "labels: {env: prod, region: us}\n"})
    code, out, _ = _run("preview", "--repo", f"file://{repo_dir}", "--base", base, "--head", head)
    assert code == 0, out
    header, *lines = out.splitlines()[1:]
    assert header.split()[:2] == ["CLUSTER", "BUNDLE"]
    status = {line.split()[0]: line.split()[1] for line in lines if "clusters change" not in line}
    assert status["prod-us-1"] == "removed" and status["prod-us-2"] == "new"
    assert status["dev-eu-1"] == "unchanged"
    assert "2 of 6 clusters change" in out


def test_preview_with_an_unknown_revision(repo_dir: Path) -> None:
    code, _, err = _run("preview", "--repo", str(repo_dir), "--base", "nope", "--head", "HEAD")
    assert code == 1 and "no branch, tag or commit named 'nope'" in err


def test_validate_notes_apps_built_by_the_external_kustomize(repo_dir: Path, kubectl: str) -> None:
    # `buildMetadata` is outside the native subset: kubectl kustomize builds it when fleet.yaml allows external
    # builds, and validate says so.
    kustomization = (repo_dir / "apps/widgets/base/kustomization.yaml").read_text()
    fleet = (repo_dir / "fleet.yaml").read_text()
    commit_files(repo_dir, {"apps/widgets/base/kustomization.yaml": kustomization + (
        "buildMetadata: [managedByLabel]\nreplacements:\n"
        "  - source: {kind: Namespace, name: widgets, fieldPath: metadata.name}\n"
        "    targets:\n      - select: {kind: Widget}\n        fieldPaths: [spec.size]\n")})
    code, out, err = _run("validate", str(repo_dir), "--rev", "HEAD")
    # Without render: {external: allow}, every cluster with widgets (all of them) fails, saying why.
    assert code == 1 and "5 of 5 clusters failed to render" in err
    assert "external builds are not allowed" in " ".join(out.replace("│", " ").split())
    commit_files(repo_dir, {"fleet.yaml": fleet + "render: {external: allow}\n"})
    code, out, _ = _run("validate", str(repo_dir), "--rev", "HEAD")
    assert code == 0, out
    assert "note: cluster dev-eu-1: app widgets built by the external kustomize: buildMetadata in " \
           "apps/widgets/base/kustomization.yaml" in out


def test_validate_warns_about_what_kustomize_builds_but_a_cluster_refuses(repo_dir: Path) -> None:
    kustomization = (repo_dir / "apps/widgets/base/kustomization.yaml").read_text()
    commit_files(repo_dir, {"apps/widgets/base/kustomization.yaml": kustomization + (
        "configMapGenerator:\n  - {name: odd, literals: ['bad key=1']}\n")})
    code, out, err = _run("validate", str(repo_dir), "--rev", "HEAD")
    assert code == 0, out
    assert ("warning: cluster dev-eu-1: app widgets: apps/widgets/base/kustomization.yaml: ConfigMap odd: "
            "'bad key' is not a valid ConfigMap key (letters, digits, '-', '_', '.'); the API server will "
            "refuse it") in err.splitlines()


def test_a_rev_that_names_both_a_tag_and_a_branch_is_refused(repo_dir: Path) -> None:
    import git

    repo = git.Repo(repo_dir)
    repo.create_tag("v1")
    repo.create_head("v1")
    code, _, err = _run("render", "--repo", str(repo_dir), "--rev", "v1", "--cluster", "dev-eu-1")
    assert code == 1 and "'v1' is ambiguous" in err and "refs/tags/v1" in err, err
    code, _, err = _run("render", "--repo", str(repo_dir), "--rev", "refs/tags/v1", "--cluster", "dev-eu-1")
    assert code == 0, err


def test_preview_reads_the_working_tree_by_default_and_says_by_exit_code_whether_anything_changes(
        repo_dir: Path) -> None:
    base = commit_files(repo_dir, {"README.md": "one\n"})
    code, out, err = _run("preview", "--repo", str(repo_dir), "--base", base, "--exit-code")
    assert code == 0 and "0 of 5 clusters change" in out, out + err
    overlay = repo_dir / "apps/web/overlays/region/us/kustomization.yaml"
    overlay.write_text(overlay.read_text().replace("us-storage", "us-east-storage"))  # not committed
    code, out, err = _run("preview", "--repo", str(repo_dir), "--base", base, "-o", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["head"] == "working tree" and document["changed"] == 1
    clusters = {c["cluster"]: c for c in document["clusters"]}
    assert clusters["prod-us-1"]["status"] == "changed" and clusters["prod-us-1"]["changedObjects"] == [
        "ConfigMap/shop/web-config"]
    assert clusters["dev-eu-1"]["status"] == "unchanged"
    code, out, _ = _run("preview", "--repo", str(repo_dir), "--base", base, "--exit-code")
    assert code == 1 and "1 of 5 clusters change" in out


def test_preview_refuses_an_empty_revision(repo_dir: Path) -> None:
    for flags in (["--base", ""], ["--base", "HEAD", "--head", " "]):
        code, out, err = _run("preview", "--repo", str(repo_dir), *flags)
        assert code == 2 and "empty revision" in err, out + err
