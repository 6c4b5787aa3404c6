"""``convoy build DIR``: what the hub's engine builds, on stdout; errors one line with exit 1."""

from __future__ import annotations

import json
import pathlib
import shutil

import yaml
from click.testing import CliRunner

from hub.cli import cli

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "testdata" / "kustomize"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["build", *args])
    return result.exit_code, result.stdout, result.stderr


def test_build_prints_the_objects_as_yaml(tmp_path: pathlib.Path) -> None:
    shutil.copytree(CORPUS / "02-base-and-overlay", tmp_path / "app")
    code, out, err = run(str(tmp_path / "app"))
    assert code == 0, err
    objects = list(yaml.safe_load_all(out))
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in objects] == [
        ("ConfigMap", "settings"), ("Service", "web"), ("Deployment", "web")]
    assert err == ""


def test_build_json_and_parent_bases(tmp_path: pathlib.Path) -> None:
    # An overlay that reaches its base through ../ from outside any Git repository.
    shutil.copytree(CORPUS / "36-components-order-and-overlay", tmp_path / "fleet")
    code, out, _ = run(str(tmp_path / "fleet"), "-o", "json")
    assert code == 0
    objects = json.loads(out)
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    assert deployment["metadata"] == {"labels": {"env": "prod", "region": "eu"}, "name": "eu-web",
                                      "namespace": "shop-eu"}
    assert deployment["spec"]["replicas"] == 4


def test_external_fallback_reason_goes_to_stderr(tmp_path: pathlib.Path) -> None:
    shutil.copytree(CORPUS / "58-external-feature-in-base", tmp_path / "app")
    code, out, err = run(str(tmp_path / "app"))
    assert code == 0
    assert "buildMetadata in app/base/kustomization.yaml" in err
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in yaml.safe_load_all(out)] == [
        ("Service", "prod-web"), ("Deployment", "prod-web")]


def test_native_only_fails_naming_the_feature(tmp_path: pathlib.Path) -> None:
    shutil.copytree(CORPUS / "58-external-feature-in-base", tmp_path / "app")
    code, out, err = run("--native-only", str(tmp_path / "app"))
    assert code == 1
    assert out == ""
    assert "buildMetadata" in err and "app/base/kustomization.yaml" in err
    assert len(err.strip().splitlines()) == 1


def test_errors_are_one_line(tmp_path: pathlib.Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "kustomization.yaml").write_text("resources:\n- ../missing\n")
    code, _, err = run(str(tmp_path / "app"))
    assert code == 1
    assert err.startswith("Error: ")
    assert err.strip().endswith(
        "app/kustomization.yaml: resource '../missing' does not exist (no such file or directory)")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(str(tmp_path / "nowhere"))
    assert code != 0 and "nowhere" in err


def test_sort_options_of_the_built_kustomization_apply_and_others_are_ignored_with_a_warning(
        tmp_path: pathlib.Path) -> None:
    shutil.copytree(CORPUS / "75-sort-options-legacy-custom", tmp_path / "app")
    code, out, err = run("--native-only", str(tmp_path / "app"))
    assert code == 0, err
    assert [obj["kind"] for obj in yaml.safe_load_all(out)] == [
        "Service", "ConfigMap", "ConfigMap", "Deployment", "ServiceAccount", "Namespace"]
    assert err == ("warning: app/base/kustomization.yaml: sortOptions is ignored: kustomize applies only the top "
                   "kustomization's (for a fleet app, the order is kustomize's legacy order)\n")


def test_what_a_cluster_will_refuse_is_built_with_a_warning_on_stderr(tmp_path: pathlib.Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "kustomization.yaml").write_text("configMapGenerator:\n- {name: c, literals: ['a b=1']}\n")
    code, out, err = run(str(tmp_path / "app"))
    assert code == 0, err
    assert yaml.safe_load(out)["data"] == {"a b": "1"}
    assert err == ("warning: app/kustomization.yaml: ConfigMap c: 'a b' is not a valid ConfigMap key "
                   "(letters, digits, '-', '_', '.'); the API server will refuse it\n")
