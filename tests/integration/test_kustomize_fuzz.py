"""Fuzzing the native kustomize engine against ``kubectl kustomize`` (issue 16).

Hypothesis writes a base, an optional Component and an overlay (resources, bases, components,
strategic-merge and JSON 6902 patches (``patches``, ``patchesStrategicMerge``, ``patchesJson6902``),
namePrefix/nameSuffix, commonLabels, labels, commonAnnotations,
namespace, images, replicas, ConfigMap/Secret generators with behaviors and options) to a scratch
directory; the overlay is built natively and by kubectl, and the parsed outputs must be equal.
Bounded for CI: a fixed seed (``derandomize``) and 40 examples. Shrunk failures it found are kept as
regression cases below (``REGRESSIONS``), run on every build.
"""

from __future__ import annotations

import pathlib
import subprocess
import tempfile
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.render.kustomize import BuildOptions, build, load_yaml_documents
from hub.tree import repofs
from hub.tree.errors import RenderError

Tree = dict[str, Any]  # path -> a mapping (dumped as YAML), a list of documents, or the file's text

NAMES = st.sampled_from(["web", "api", "cache"])
LABEL_KEYS = st.sampled_from(["app", "team", "tier", "app.kubernetes.io/part-of"])
LABEL_VALUES = st.sampled_from(["a", "b", "prod", "x-1"])
LABELS = st.dictionaries(LABEL_KEYS, LABEL_VALUES, min_size=1, max_size=2)
IMAGES = st.sampled_from(["nginx", "busybox", "registry.example.com/team/app"])
AFFIXES = st.sampled_from(["", "p-", "prod-"])
SUFFIXES = st.sampled_from(["", "-s", "-eu1"])
NAMESPACES = st.sampled_from(["", "shop", "team-a"])
LITERALS = st.dictionaries(st.sampled_from(["LEVEL", "MODE", "COLOR"]), st.sampled_from(["1", "debug", "red"]),
                           min_size=1, max_size=2)


def deployment(name: str, image: str, config: str | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": f"{image}:1.0"}
    if config:
        container["envFrom"] = [{"configMapRef": {"name": config}}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    """A base, maybe a Component, and an overlay at ``overlay/`` using both."""
    tree: Tree = {}
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    image = draw(IMAGES)
    generated = draw(st.booleans())
    base: dict[str, Any] = {"resources": []}
    for name in names:
        tree[f"base/{name}.yaml"] = [deployment(name, image, "settings" if generated else None), service(name)]
        base["resources"].append(f"{name}.yaml")
    if generated:
        base["configMapGenerator"] = [{"name": "settings", "literals": [f"{k}={v}" for k, v in
                                                                        draw(LITERALS).items()]}]
    if draw(st.booleans()):
        base["commonLabels"] = draw(LABELS)
    if prefix := draw(AFFIXES):
        base["namePrefix"] = "b" + prefix
    tree["base/kustomization.yaml"] = base

    # `bases` is kustomize's deprecated spelling of a directory in `resources`; both are in real repositories.
    overlay: dict[str, Any] = {draw(st.sampled_from(["resources", "bases"])): ["../base"]}
    target = draw(st.sampled_from(names))
    if draw(st.booleans()):  # a Component patching a Deployment and annotating everything
        component: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
                                     "commonAnnotations": {"layer": "component"}}
        if draw(st.booleans()):
            component["patches"] = [{"path": "patch.yaml"}]
            tree["component/patch.yaml"] = {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": target},
                "spec": {"template": {"spec": {"containers": [{"name": target, "env": [
                    {"name": "FROM_COMPONENT", "value": "yes"}]}]}}}}
        tree["component/kustomization.yaml"] = component
        overlay["components"] = ["../component"]
    if namespace := draw(NAMESPACES):
        overlay["namespace"] = namespace
    if prefix := draw(AFFIXES):
        overlay["namePrefix"] = prefix
    if suffix := draw(SUFFIXES):
        overlay["nameSuffix"] = suffix
    labels_field = draw(st.sampled_from(["", "commonLabels", "labels"]))
    if labels_field == "commonLabels":
        overlay["commonLabels"] = draw(LABELS)
    elif labels_field == "labels":
        # Any keys, also without selectors on a key a base's commonLabels put into selectors
        # (REGRESSIONS["labels-without-selectors-override-base-selector"]).
        overlay["labels"] = [{"pairs": draw(LABELS), "includeSelectors": draw(st.booleans())}]
    if draw(st.booleans()):
        overlay["commonAnnotations"] = {"owner": draw(st.sampled_from(["ops", "dev"]))}
    if draw(st.booleans()):
        change = draw(st.sampled_from(["newTag", "newName", "digest"]))
        value = {"newTag": "2.0", "newName": "mirror.example.com/app",
                 "digest": "sha256:" + "a" * 64}[change]
        overlay["images"] = [{"name": image, change: value}]
    if draw(st.booleans()):
        overlay["replicas"] = [{"name": target, "count": draw(st.integers(0, 5))}]
    patches: list[dict[str, Any]] = []
    patch_kind = draw(st.sampled_from(["", "smp-file", "smp-inline", "json6902", "patchesStrategicMerge",
                                       "patchesJson6902"]))
    smp = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": target},
           "spec": {"ports": [{"port": 80, "targetPort": 9090}]}}
    if patch_kind == "smp-file":
        tree["overlay/service-patch.yaml"] = smp
        patches.append({"path": "service-patch.yaml"})
    elif patch_kind == "smp-inline":
        patches.append({"patch": yaml.safe_dump(smp)})
    elif patch_kind == "json6902":
        ops = [{"op": "add", "path": "/metadata/annotations", "value": {"patched": "json"}},
               {"op": "replace", "path": "/spec/replicas", "value": 3}]
        patches.append({"target": {"kind": "Deployment", "name": target}, "patch": yaml.safe_dump(ops)})
    elif patch_kind == "patchesJson6902":
        tree["overlay/ops.yaml"] = yaml.safe_dump([{"op": "replace", "path": "/spec/ports/0/port", "value": 8443}])
        overlay["patchesJson6902"] = [{"target": {"version": "v1", "kind": "Service", "name": target},
                                       "path": "ops.yaml"}]
    elif patch_kind == "patchesStrategicMerge":
        tree["overlay/service-patch.yaml"] = smp
        overlay["patchesStrategicMerge"] = ["service-patch.yaml"]
    if patches:
        overlay["patches"] = patches
    if generated and draw(st.booleans()):
        behavior = draw(st.sampled_from(["merge", "replace"]))
        overlay["configMapGenerator"] = [{"name": "settings", "behavior": behavior,
                                          "literals": [f"{k}={v}" for k, v in draw(LITERALS).items()]}]
    if draw(st.booleans()):
        overlay["secretGenerator"] = [{"name": "creds", "literals": ["token=abc"], "type": "Opaque"}]
    if draw(st.booleans()):
        overlay["generatorOptions"] = {"disableNameSuffixHash": draw(st.booleans()),
                                       "labels": {"generated": "yes"}}
    tree["overlay/kustomization.yaml"] = overlay
    return tree


def write(tree: Tree, root: pathlib.Path) -> None:
    for path, content in tree.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):  # written as it is
            target.write_text(content)
            continue
        documents = content if isinstance(content, list) else [content]
        target.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def check_equal(tree: Tree, kubectl: str) -> None:
    """The overlay of ``tree`` builds the same natively as with kubectl, or both refuse it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        write(tree, root)
        proc = subprocess.run([kubectl, "kustomize", str(root / "overlay")], capture_output=True, check=False,
                              timeout=60)
        try:
            result = build(repofs.DirectoryFS(root), "overlay", options=BuildOptions(allow_external=False))
        except RenderError as exc:
            assert proc.returncode != 0, f"native refused what kubectl builds: {exc}"
            return
        assert proc.returncode == 0, f"native built what kubectl refuses: {proc.stderr.decode()[-300:]}"
        assert result.engine == "native"
        assert result.objects == load_yaml_documents(proc.stdout, file="kubectl")


@pytest.mark.kubectl
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tree=trees())
def test_generated_kustomizations_build_like_kubectl(tree: Tree, kubectl: str) -> None:
    check_equal(tree, kubectl)


#: Shrunk failures the fuzzer found, kept as fixed cases.
REGRESSIONS: dict[str, Tree] = {
    # kustomize's `labels` without includeSelectors still rewrites a selector label that a base's
    # commonLabels put there (selector team: b): one YAML node shared by every place it was created.
    "labels-without-selectors-override-base-selector": {
        "base/web.yaml": [deployment("web", "nginx", None), service("web")],
        "base/kustomization.yaml": {"resources": ["web.yaml"], "commonLabels": {"team": "a"}},
        "overlay/kustomization.yaml": {"resources": ["../base"],
                                       "labels": [{"pairs": {"team": "b"}, "includeSelectors": False}]},
    },
}

#: Regressions not fixed yet, with the reason; strict, so a fix makes the test say "remove it from here".
OPEN_REGRESSIONS: dict[str, str] = {}


@pytest.mark.kubectl
@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.xfail(reason=OPEN_REGRESSIONS[case], strict=True))
    if case in OPEN_REGRESSIONS else case for case in sorted(REGRESSIONS)])
def test_fuzz_regressions_build_like_kubectl(case: str, kubectl: str) -> None:
    check_equal(REGRESSIONS[case], kubectl)
