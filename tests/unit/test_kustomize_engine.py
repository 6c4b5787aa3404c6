"""Pure parts of the kustomize engine, and the engine over a Git commit versus a directory."""

from __future__ import annotations

import json
import pathlib
import shutil

import git
import pytest

from hub.render.kustomize import build, build_layers, generating, ordering, patching, transforming
from hub.render.kustomize.resources import Resource
from hub.tree import repofs
from hub.tree.errors import KustomizeError

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "testdata" / "kustomize"


def test_hash_is_kustomizes() -> None:
    # `kubectl kustomize` names a generated ConfigMap with literals A=1, B=two "cfg-6b56fdfggc",
    # whatever its name: kustomize's hasher never sees the name (see kustomize_hash).
    for name in ("cfg", "p-cfg-other"):
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"A": "1", "B": "two"}}
        assert generating.kustomize_hash(obj) == "6b56fdfggc"
    changed = {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"A": "1", "B": "three"}}
    assert generating.kustomize_hash(changed) != "6b56fdfggc"
    # Secrets hash their type too.
    secret = {"kind": "Secret", "type": "Opaque", "metadata": {"name": "s"}, "data": {"k": "dg=="}}
    other_type = {**secret, "type": "kubernetes.io/tls"}
    assert generating.kustomize_hash(secret) != generating.kustomize_hash(other_type)


def test_hash_suffix_alphabet() -> None:
    suffix = generating.hash_suffix("anything")
    assert len(suffix) == 10
    assert not set(suffix) & set("013ae")


def test_base64_wraps_like_kyaml() -> None:
    assert generating.encode_base64(b"short") == "c2hvcnQ="
    wrapped = generating.encode_base64(b"x" * 60)  # 80 base64 characters: two lines, each ending in \n
    lines = wrapped.split("\n")
    assert [len(line) for line in lines] == [70, 10, 0]
    assert "".join(lines) == "eHh4" * 20


@pytest.mark.parametrize(("image", "parts"), [
    ("nginx", ("nginx", "", "")),
    ("nginx:1.25", ("nginx", "1.25", "")),
    ("registry:5000/team/app:1.0", ("registry:5000/team/app", "1.0", "")),
    ("registry:5000/team/app", ("registry:5000/team/app", "", "")),
    ("app@sha256:abc", ("app", "", "sha256:abc")),
    ("reg.io/app:1.0@sha256:abc", ("reg.io/app", "1.0", "sha256:abc")),
])
def test_split_image(image: str, parts: tuple[str, str, str]) -> None:
    assert transforming.split_image(image) == parts


def test_label_selectors() -> None:
    selector = patching.parse_label_selector("app=web, tier in (a, b),!legacy,team,env!=dev", file="k")
    assert selector.matches({"app": "web", "tier": "b", "team": "x"})
    assert not selector.matches({"app": "web", "tier": "c", "team": "x"})
    assert not selector.matches({"app": "web", "tier": "a", "team": "x", "legacy": ""})
    assert not selector.matches({"app": "web", "tier": "a", "team": "x", "env": "dev"})
    assert not selector.matches({"app": "web", "tier": "a"})
    with pytest.raises(KustomizeError, match="invalid label selector"):
        patching.parse_label_selector("a b c", file="k")


def test_legacy_order() -> None:
    def res(api_version: str, kind: str, name: str, namespace: str = "") -> Resource:
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        return Resource(obj={"apiVersion": api_version, "kind": kind, "metadata": meta}, source="x")

    objects = [res("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "v"),
               res("example.com/v1", "Widget", "w"), res("apps/v1", "Deployment", "b"),
               res("apps/v1", "Deployment", "a", "zeta"), res("v1", "Service", "s"),
               res("v1", "Namespace", "ns"), res("apiextensions.k8s.io/v1", "CustomResourceDefinition", "c"),
               res("networking.k8s.io/v1", "Ingress", "i")]
    kinds = [(r.kind, r.name) for r in ordering.legacy_sorted(objects)]
    # Same kind: by namespace then name, an unset namespace sorting as "~X" (after any real one).
    assert kinds == [("Namespace", "ns"), ("CustomResourceDefinition", "c"), ("Service", "s"),
                     ("Deployment", "a"), ("Deployment", "b"), ("Widget", "w"), ("Ingress", "i"),
                     ("ValidatingWebhookConfiguration", "v")]


def native_cases() -> list[str]:
    return sorted(path.name for path in CORPUS.iterdir()
                  if path.is_dir() and not (path / "expect.yaml").exists())


def test_git_commit_builds_like_the_directory(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "corpus"
    shutil.copytree(CORPUS, root)
    repo = git.Repo.init(root)
    repo.git.add(A=True)
    sha = str(repo.index.commit("corpus", author=git.Actor("t", "t@example.com"),
                                committer=git.Actor("t", "t@example.com")).hexsha)
    directory, tree = repofs.DirectoryFS(root), repofs.GitTreeFS(repo, sha)
    for case in native_cases():
        assert build(tree, case).objects == build(directory, case).objects, case
    # A second view of the same commit reuses the parsed blobs and still gives fresh, unshared objects.
    first = build(repofs.GitTreeFS(repo, sha), "01-resources-files").objects
    first[0]["metadata"]["name"] = "mutated"
    again = build(repofs.GitTreeFS(repo, sha), "01-resources-files").objects
    assert again[0]["metadata"]["name"] != "mutated"


def test_a_new_commit_changes_the_build(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(CORPUS / "61-layers", root)
    repo = git.Repo.init(root)
    actor = git.Actor("t", "t@example.com")
    repo.git.add(A=True)
    before = str(repo.index.commit("one", author=actor, committer=actor).hexsha)
    (root / "env-prod" / "kustomization.yaml").write_text(
        (root / "env-prod" / "kustomization.yaml").read_text().replace("count: 3", "count: 9"))
    repo.git.add(A=True)
    after = str(repo.index.commit("two", author=actor, committer=actor).hexsha)

    def replicas(sha: str) -> int:
        result = build_layers(repofs.GitTreeFS(repo, sha), resources=["base"], components=["env-prod"])
        deployment = next(obj for obj in result.objects if obj["kind"] == "Deployment")
        return int(deployment["spec"]["replicas"])

    assert (replicas(before), replicas(after)) == (3, 9)


def test_size_limit_holds_for_files_already_parsed(tmp_path: pathlib.Path) -> None:
    from hub.render.kustomize import BuildOptions
    from hub.tree.errors import LimitError

    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (root / "app" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  pad: "
                                         + "x" * 4000 + "\n")
    repo = git.Repo.init(root)
    repo.git.add(A=True)
    actor = git.Actor("t", "t@example.com")
    sha = str(repo.index.commit("one", author=actor, committer=actor).hexsha)
    assert len(build(repofs.GitTreeFS(repo, sha), "app").objects) == 1  # parsed and cached
    with pytest.raises(LimitError, match="over the 1000-byte limit"):
        build(repofs.GitTreeFS(repo, sha), "app", options=BuildOptions(max_yaml_bytes=1000))


# -- kustomize's leniencies and null handling (issue 16) ------------------------------------------------

def _build_files(tmp_path: pathlib.Path, files: dict[str, str]) -> list[dict[str, object]]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    result = build(repofs.DirectoryFS(tmp_path), "app")
    assert result.engine == "native"
    return result.objects


DEPLOYMENT = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\nspec:\n  replicas: 1\n"
              "  template:\n    spec:\n      containers:\n      - {name: web, image: 'nginx:1.25'}\n")


def test_a_patch_file_of_yaml_operations_after_a_comment_is_a_json_patch(tmp_path: pathlib.Path) -> None:
    objects = _build_files(tmp_path, {
        "app/kustomization.yaml": "resources: [d.yaml]\npatches:\n- {path: ops.yaml, target: {kind: Deployment}}\n",
        "app/d.yaml": DEPLOYMENT,
        "app/ops.yaml": "# scale up\n---\n- op: replace\n  path: /spec/replicas\n  value: 3\n"})
    assert objects[0]["spec"]["replicas"] == 3  # type: ignore[index]


def test_an_unknown_generator_behavior_is_create(tmp_path: pathlib.Path) -> None:
    objects = _build_files(tmp_path, {
        "app/kustomization.yaml": "configMapGenerator:\n- {name: cfg, behavior: Merge, literals: [A=1]}\n"})
    assert [obj["kind"] for obj in objects] == ["ConfigMap"]


def test_images_tag_suffix_appends_to_the_tag(tmp_path: pathlib.Path) -> None:
    objects = _build_files(tmp_path, {
        "app/kustomization.yaml": "resources: [d.yaml]\nimages:\n- {name: nginx, tagSuffix: -debug}\n",
        "app/d.yaml": DEPLOYMENT})
    # Twice on a workload, as kubectl's kustomize v5.5 (tests/testdata/kustomize/73-images-tag-suffix).
    assert objects[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25-debug-debug"  # type: ignore[index]


def test_empty_annotations_are_dropped_and_values_become_text(tmp_path: pathlib.Path) -> None:
    objects = _build_files(tmp_path, {
        "app/kustomization.yaml": "resources: [d.yaml, cm.yaml]\n",
        "app/d.yaml": DEPLOYMENT,
        "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n"
                       "  annotations: {n: 3, b: true, e: }\n"})
    deployment, config_map = (next(o for o in objects if o["kind"] == kind) for kind in ("Deployment", "ConfigMap"))
    assert "annotations" not in deployment["metadata"]  # type: ignore[operator]
    assert config_map["metadata"] == {"name": "c", "labels": None, "annotations": {"n": "3", "b": "true", "e": ""}}


def test_a_null_label_or_annotation_value_is_the_empty_string(tmp_path: pathlib.Path) -> None:
    objects = _build_files(tmp_path, {
        "app/kustomization.yaml": "resources: [cm.yaml]\ncommonLabels: {a: }\ncommonAnnotations: {b: null}\n",
        "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"})
    assert objects[0]["metadata"] == {"name": "c", "labels": {"a": ""}, "annotations": {"b": ""}}


def test_a_patch_may_rename_an_object_when_its_options_allow_it(tmp_path: pathlib.Path) -> None:
    patch = json.dumps("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: renamed\n")
    objects = _build_files(tmp_path, {
        "app/kustomization.yaml": "resources: [cm.yaml]\npatches:\n"
                                  f"- target: {{name: a}}\n  patch: {patch}\n  options: {{allowNameChange: true}}\n"
                                  f"- target: {{name: b}}\n  patch: {patch}\n",
        "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n"
                       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"})
    assert sorted(obj["metadata"]["name"] for obj in objects) == ["b", "renamed"]  # type: ignore[index]
