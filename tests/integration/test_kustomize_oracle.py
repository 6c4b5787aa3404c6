"""The native kustomize engine against ``kubectl kustomize`` as a live oracle.

Every directory of ``tests/testdata/kustomize`` is built both ways and compared as
parsed YAML: same objects, same order. A case with an ``expect.yaml`` says it is
outside the native subset (``feature:``): the engine must fall back with that
reason and still give the oracle's result.
"""

from __future__ import annotations

import pathlib
import random
import subprocess
from typing import Any

import pytest
import yaml

from hub.render.kustomize import BuildOptions, build, build_layers, load_yaml_documents
from hub.tree import repofs
from hub.tree.errors import RenderError, UnsupportedFeatureError

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "testdata" / "kustomize"
CASES = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())


def oracle(kubectl: str, directory: pathlib.Path) -> list[dict[str, Any]]:
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    # Parsed as kustomize (go-yaml v3, YAML 1.2) writes it: a plain `=` is a string, not YAML 1.1's value key.
    return load_yaml_documents(proc.stdout, file="kubectl kustomize output")


def expectation(case: str) -> dict[str, Any]:
    path = CORPUS / case / "expect.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def names(objects: list[dict[str, Any]]) -> list[str]:
    return [f"{obj.get('kind')}/{obj.get('metadata', {}).get('namespace', '')}/{obj['metadata']['name']}"
            for obj in objects]


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.kubectl
@pytest.mark.parametrize("case", CASES)
def test_native_build_equals_kubectl_kustomize(case: str, kubectl: str) -> None:
    expected = oracle(kubectl, CORPUS / case)
    result = build(repofs.DirectoryFS(CORPUS), case, options=BuildOptions(allow_external=True))
    feature = expectation(case).get("feature")
    if feature:
        assert result.engine == "external"
        assert result.external_reason is not None and result.external_reason.startswith(f"{feature} in ")
    else:
        assert result.engine == "native", result.external_reason
    assert names(result.objects) == names(expected)
    assert result.objects == expected


@pytest.mark.parametrize("case", [case for case in CASES if expectation(case).get("feature")])
def test_unsupported_feature_without_fallback_names_feature_and_file(case: str) -> None:
    feature = expectation(case)["feature"]
    with pytest.raises(UnsupportedFeatureError) as info:
        build(repofs.DirectoryFS(CORPUS), case, options=BuildOptions(allow_external=False))
    assert info.value.feature == feature
    assert info.value.file is not None and info.value.file.startswith(case + "/")
    assert feature in str(info.value)


LAYER_CASES = [
    # (resources, components, namespace) relative to the corpus root
    (["61-layers/base"], [], None),
    (["61-layers/base"], ["61-layers/env-prod", "61-layers/region-eu"], "shop"),
    (["61-layers/base"], ["61-layers/region-eu", "61-layers/cluster-eu1"], None),
    (["61-layers/base", "61-layers/extra.yaml"], ["61-layers/env-prod", "61-layers/cluster-eu1"], "shop-eu1"),
    # vars and configurations in an app base build natively through the fleet's layers too
    (["81-vars-across-layers/base"], ["81-vars-across-layers/component"], "shop"),
    (["82-configurations/base"], [], "shop"),
]


@pytest.mark.kubectl
@pytest.mark.parametrize(("resources", "components", "namespace"), LAYER_CASES)
def test_build_layers_equals_kubectl_on_the_same_kustomization(
        resources: list[str], components: list[str], namespace: str | None, kubectl: str,
        tmp_path: pathlib.Path) -> None:
    # The synthetic kustomization written to disk beside the corpus, then built by the oracle.
    site = tmp_path / "repo"
    repofs.materialize(repofs.DirectoryFS(CORPUS), site)
    kustomization: dict[str, Any] = {"resources": resources}
    if components:
        kustomization["components"] = components
    if namespace:
        kustomization["namespace"] = namespace
    (site / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    expected = oracle(kubectl, site)
    (site / "kustomization.yaml").unlink()
    result = build_layers(repofs.DirectoryFS(site), resources=resources, components=components, namespace=namespace)
    assert result.engine == "native"
    assert result.objects == expected


@pytest.mark.kubectl
def test_external_fallback_reads_a_git_commit_not_the_disk(kubectl: str, tmp_path: pathlib.Path) -> None:
    import git

    case = "58-external-feature-in-base"
    root = tmp_path / "repo"
    repofs.materialize(repofs.DirectoryFS(CORPUS / case), root / case)
    repo = git.Repo.init(root)
    repo.git.add(A=True)
    actor = git.Actor("t", "t@example.com")
    sha = str(repo.index.commit("fleet", author=actor, committer=actor).hexsha)
    expected = oracle(kubectl, root / case)
    # An uncommitted edit must not reach the external build of the commit.
    (root / case / "kustomization.yaml").write_text("namePrefix: dirty-\nresources:\n- base\n")
    result = build(repofs.GitTreeFS(repo, sha), case, options=BuildOptions(allow_external=True,
                                                                              external_command=(kubectl, "kustomize")))
    assert result.engine == "external"
    assert result.external_reason == f"buildMetadata in {case}/base/kustomization.yaml"
    assert result.objects == expected


# -- random compositions ---------------------------------------------------------------------------
# Seeded random stacks (base -> mid -> top, plus components) of prefixes, suffixes, namespaces, labels,
# annotations, images, replicas, generator merges and patches of every kind over objects that refer to
# each other: the oracle and the native build must agree on each, or both refuse it.

_POOL: list[dict[str, Any]] = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}}, "spec": {
                "serviceAccountName": "sa", "containers": [{
                    "name": "web", "image": "nginx:1.25", "envFrom": [{"configMapRef": {"name": "cfg"}}],
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "p"}}}]}],
                "volumes": [{"name": "v", "configMap": {"name": "cfg"}},
                            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role"},
     "subjects": [{"kind": "ServiceAccount", "name": "sa"}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "role"},
     "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"], "verbs": ["get"]}]},
    {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cron"}, "spec": {
        "schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}}}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ing"}, "spec": {"rules": [
        {"http": {"paths": [{"path": "/", "pathType": "Prefix",
                             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "crb"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr"},
     "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cr"}, "rules": []},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "home"}},
    {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hpa"},
     "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3}},
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "home"}, "spec": {
        "serviceName": "web", "selector": {"matchLabels": {"app": "db"}}, "template": {
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "postgres",
                                     "envFrom": [{"secretRef": {"name": "sec"}}]}]}}}},
    {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
     "spec": {"parts": [{"name": "a", "n": 1}], "size": 1}},
]


def _random_layer(rng: random.Random, name: str, *, component: bool) -> dict[str, Any]:
    layer: dict[str, Any] = (
        {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component"} if component else {})
    if rng.random() < 0.4:
        layer["namePrefix"] = rng.choice(["p-", "q-", "x-"])
    if rng.random() < 0.3:
        layer["nameSuffix"] = rng.choice(["-s", "-t"])
    if rng.random() < 0.3:
        layer["namespace"] = rng.choice(["ns1", "ns2"])
    if rng.random() < 0.3:
        layer["commonLabels"] = {f"l{rng.randint(0, 3)}": "v"}
    if rng.random() < 0.3:
        layer["labels"] = [{"pairs": {f"m{rng.randint(0, 3)}": "w"}, "includeSelectors": rng.random() < 0.5,
                            "includeTemplates": rng.random() < 0.5}]
    if rng.random() < 0.3:
        layer["commonAnnotations"] = {"a": name}
    if rng.random() < 0.3:
        layer["images"] = [{"name": "nginx",
                            **rng.choice([{"newTag": "2"}, {"newName": "reg/nginx"}, {"digest": "sha256:abc"}])}]
    if rng.random() < 0.4:
        layer["configMapGenerator"] = [{"name": "cfg", "literals": [f"K{rng.randint(0, 2)}={name}"],
                                        "behavior": rng.choice(["merge", "replace"])}]
    if rng.random() < 0.2:
        layer["secretGenerator"] = [{"name": "sec", "behavior": "merge", "literals": [f"q={name}"]}]
    patches: list[dict[str, Any]] = []
    if rng.random() < 0.4:
        patches.append({"target": {"kind": "Deployment"}, "patch": yaml.safe_dump(
            [{"op": "add", "path": "/metadata/annotations", "value": {"p": name}}])})
    if rng.random() < 0.3:
        patches.append({"patch": yaml.safe_dump({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "X", "value": name}]}]}}}})})
    if rng.random() < 0.2:
        patches.append({"target": {"kind": "Widget"}, "patch": yaml.safe_dump(
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}})})
    if rng.random() < 0.3:
        patches.append({"target": {"kind": "Service", "name": rng.choice(["web", "p-web", ".*web.*", "nomatch"])},
                        "patch": yaml.safe_dump([{"op": "add", "path": "/spec/type", "value": "NodePort"}])})
    if rng.random() < 0.2:
        patches.append({"target": {"kind": "ServiceAccount"},
                        "patch": "$patch: delete\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n"})
    if patches:
        layer["patches"] = patches
    if rng.random() < 0.2:
        layer["replicas"] = [{"name": "web", "count": rng.randint(2, 5)}]
    if set(layer) <= {"apiVersion", "kind"}:
        layer["commonAnnotations"] = {"layer": name}  # kustomize refuses an empty kustomization; Convoy does not
    return layer


def _random_stack(seed: int, root: pathlib.Path) -> None:
    rng = random.Random(seed)
    objects = rng.sample(_POOL, rng.randint(3, len(_POOL)))
    if _POOL[0] not in objects:
        objects.append(_POOL[0])
    base = {key: value for key, value in _random_layer(rng, "base", component=False).items()
            if key not in {"configMapGenerator", "secretGenerator"}}
    base.update({"resources": ["objects.yaml"], "configMapGenerator": [{"name": "cfg", "literals": ["A=1"]}],
                 "secretGenerator": [{"name": "sec", "literals": ["p=x"]}]})
    files = {"base/objects.yaml": yaml.safe_dump_all(objects), "base/kustomization.yaml": yaml.safe_dump(base)}
    components = []
    for index in range(rng.randint(0, 2)):
        files[f"c{index}/kustomization.yaml"] = yaml.safe_dump(_random_layer(rng, f"c{index}", component=True))
        components.append(f"../c{index}")
    files["mid/kustomization.yaml"] = yaml.safe_dump(
        {**_random_layer(rng, "mid", component=False), "resources": ["../base"]})
    top = {**_random_layer(rng, "top", component=False), "resources": ["../mid"]}
    if components:
        top["components"] = components
    files["top/kustomization.yaml"] = yaml.safe_dump(top)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.kubectl
@pytest.mark.parametrize("seed", range(40))
def test_random_compositions_equal_kubectl(seed: int, kubectl: str, tmp_path: pathlib.Path) -> None:
    _random_stack(seed, tmp_path)
    proc = subprocess.run([kubectl, "kustomize", str(tmp_path / "top")], capture_output=True, check=False,
                          timeout=120)
    fs = repofs.DirectoryFS(tmp_path)
    if proc.returncode != 0:
        with pytest.raises(RenderError):
            build(fs, "top")
        return
    expected = [doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None]
    assert build(fs, "top").objects == expected
