"""`convoy preview --format markdown|json --fail-on ...` on a Git copy of the sample fleet, as a PR check runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import cli
from tests.integration.hub_harness import commit_files, sample_repo


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def change(tmp_path: Path) -> tuple[Path, str, str]:
    """A pull request on the sample fleet: a us-only value, a new object everywhere, the Service deleted."""
    repo, _ = sample_repo(tmp_path)
    repo_dir = Path(repo.working_dir)
    base = commit_files(repo_dir, {"README.md": "base\n"})
    overlay = repo_dir / "apps/web/overlays/region/us/kustomization.yaml"
    kustomization = (repo_dir / "apps/web/base/kustomization.yaml").read_text()
    head = commit_files(repo_dir, {
        str(overlay.relative_to(repo_dir)): overlay.read_text().replace("us-storage", "us-east-storage"),
        "apps/web/base/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
        "apps/web/base/kustomization.yaml": kustomization.replace("  - service.yaml\n", "  - extra.yaml\n")})
    return repo_dir, base, head


def _sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^### (.+)\n", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_markdown_comment_of_a_pull_request(change: tuple[Path, str, str]) -> None:
    repo_dir, base, head = change
    code, out, err = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head, "--format", "markdown")
    assert code == 0, err
    assert out.startswith(f"## Convoy preview: `{base}` → `{head}`\n")
    match = re.search(r"\*\*(\d+) of (\d+) clusters change\*\* \((\d+) changed, (\d+) new, (\d+) removed\); "
                      r"\*\*(\d+) fail to render\*\*", out)
    assert match is not None and match.groups() == ("5", "5", "5", "0", "0", "0")
    sections = _sections(out)
    assert list(sections) == ["By environment and region", "Rollout", "Changes"]
    areas = {tuple(cell.strip() for cell in row.strip("|").split("|")[:3])
             for row in sections["By environment and region"].splitlines() if row.startswith("| ")}
    assert {("prod", "us", "1"), ("prod", "eu", "1"), ("dev", "eu", "1")} <= areas
    # The sample fleet's waves: dev, staging, the prod canary (prod-eu-1), then the rest.
    waves = [row.split("|")[2].strip() for row in sections["Rollout"].splitlines() if re.match(r"\| \d", row)]
    assert waves == ["dev", "staging", "canary", "rest"]
    assert "| 4 | rest | 2 | prod-ap-1, prod-us-1 |" in sections["Rollout"]
    groups = [m.groups() for line in sections["Changes"].splitlines()
              if (m := re.fullmatch(r"#### (\d+) clusters? \(changed\): (.+)", line))]
    assert groups == [("4", "dev-eu-1, prod-ap-1, prod-eu-1, staging-eu-1"), ("1", "prod-us-1")]
    us_group = sections["Changes"].split("#### 1 cluster (changed): prod-us-1")[1]
    assert '    data.DATA_LOCATION: "us-storage" → "us-east-storage"' in us_group
    assert "+ ConfigMap/shop/extra" in us_group and "- Service/shop/web" in us_group


def test_the_json_report_and_its_old_keys(change: tuple[Path, str, str]) -> None:
    repo_dir, base, head = change
    code, out, _ = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head, "--format", "json")
    assert code == 0
    document = json.loads(out)
    code, same, _ = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head, "-o", "json")
    assert json.loads(same) == document
    assert document["changed"] == 5 and document["total"] == 5
    clusters = {c["cluster"]: c for c in document["clusters"]}
    assert clusters["prod-us-1"]["removedObjects"] == ["Service/shop/web"]
    assert clusters["prod-eu-1"]["wave"] == "canary" and clusters["prod-eu-1"]["env"] == "prod"
    assert [len(g["clusters"]) for g in document["changeGroups"]] == [4, 1]
    us = document["changeGroups"][clusters["prod-us-1"]["group"]]
    assert {"path": "data.DATA_LOCATION", "old": '"us-storage"', "new": '"us-east-storage"'} in [
        f for o in us["objects"] for f in o["fields"]]
    assert document["rollout"]["strategy"] is True and document["renderErrors"] == []


def test_fail_on_policies_exit_1_after_the_report_and_unknown_ones_are_usage_errors(
        change: tuple[Path, str, str]) -> None:
    repo_dir, base, head = change
    args = ("preview", "--repo", str(repo_dir), "--base", base, "--head", head, "--format", "markdown")
    code, out, err = _run(*args, "--fail-on", "deletions,render-errors", "--fail-on", "cluster-removals")
    assert code == 1
    assert "## Convoy preview" in out and "**Policy failed:**" in out
    assert err.splitlines() == ["Error: --fail-on deletions: 5 objects deleted in 5 clusters: dev-eu-1, prod-ap-1, "
                                "prod-eu-1, prod-us-1, staging-eu-1"]
    code, _, err = _run(*args, "--fail-on", "render-errors,cluster-removals")
    assert code == 0, err
    code, _, err = _run(*args, "--fail-on", "deletion")
    assert code == 2 and "unknown policy 'deletion'" in err


def test_a_head_that_breaks_clusters_lists_them_and_exits_1(tmp_path: Path) -> None:
    repo, _ = sample_repo(tmp_path)
    repo_dir = Path(repo.working_dir)
    base = commit_files(repo_dir, {"README.md": "one\n"})
    head = commit_files(repo_dir, {"apps/web/overlays/env/prod/kustomization.yaml": "replicas: {\n"})
    code, out, err = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head, "--format", "markdown")
    assert code == 1 and "the head revision fails to render for: prod-ap-1, prod-eu-1, prod-us-1" in err
    errors = _sections(out)["Render errors"]
    rows = [row.split("|")[1].strip() for row in errors.splitlines() if row.startswith("| prod")]
    assert rows == ["prod-ap-1", "prod-eu-1", "prod-us-1"]
    assert "**3 fail to render**" in out


def test_secret_values_appear_in_no_output(tmp_path: Path) -> None:
    repo, _ = sample_repo(tmp_path)
    repo_dir = Path(repo.working_dir)
    kustomization = (repo_dir / "apps/web/base/kustomization.yaml").read_text()
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: %s}\n"
    base = commit_files(repo_dir, {"apps/web/base/creds.yaml": secret % "old-hunter2",
                                   "apps/web/base/kustomization.yaml": kustomization.replace(
                                       "  - service.yaml\n", "  - service.yaml\n  - creds.yaml\n")})
    head = commit_files(repo_dir, {"apps/web/base/creds.yaml": secret % "new-hunter3"})
    outputs = []
    for flags in (["--format", "markdown"], ["--format", "json"], ["-o", "yaml"], ["--diff"]):
        code, out, err = _run("preview", "--repo", str(repo_dir), "--base", base, "--head", head, *flags)
        assert code == 0, err
        assert "hunter" not in out + err, flags
        outputs.append(out)
    markdown, _, _, diff = outputs
    assert "    stringData.password: <redacted> → <redacted>" in markdown
    assert "-  password: <redacted>\n+  password: <redacted> (differs)" in diff
