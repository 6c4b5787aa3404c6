"""Random stacks using ``vars`` and ``configurations`` against ``kubectl kustomize`` as the oracle.

Seeded: a base, a middle overlay, a top overlay and maybe a component, each with random name
prefixes/suffixes, namespaces, images and labels, vars declared at random layers (sometimes twice, or
pointing at a field that is not there), and ``configurations`` files at random layers. The native
build and the oracle must give the same objects, or both refuse the stack.
"""

from __future__ import annotations

import pathlib
import random
import subprocess
from typing import Any

import pytest
import yaml

from hub.render.kustomize import build
from hub.tree import repofs
from hub.tree.errors import RenderError

_OBJECTS: list[dict[str, Any]] = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "annotations": {"a": "$(V0)"}},
     "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
         "metadata": {"labels": {"app": "web"}, "annotations": {"t": "$(V1)-$(V2)"}},
         "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "args": ["--a=$(V0)", "$(V1)", "$(V3)"],
                                  "env": [{"name": "E", "value": "$(V2)/$(V4)/$(NS)"}],
                                  "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"v": "$(V4)"}},
     "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080, "targetPort": "$(V1)"}]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ing"},
     "spec": {"rules": [{"host": "$(V0).example.com"}], "tls": [{"hosts": ["$(V3)"], "secretName": "$(V2)"}]}},
    {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
     "spec": {"message": "$(V0) $(V2)", "cfg": "cfg", "alias": "w", "size": 1, "image": "nginx:1.25"}},
]

_TARGETS: list[tuple[dict[str, str], str | None]] = [
    ({"kind": "Service", "name": "web", "apiVersion": "v1"}, None),
    ({"kind": "Service", "name": "web", "apiVersion": "v1"}, "spec.ports[0].port"),
    ({"kind": "ConfigMap", "name": "cfg", "apiVersion": "v1"}, None),
    ({"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "spec.template.spec.containers[0].image"),
    ({"kind": "Widget", "name": "w", "apiVersion": "example.com/v1"}, "spec.alias"),
    ({"kind": "Widget", "name": "w", "apiVersion": "example.com/v1"}, "spec.size"),
    ({"kind": "Service", "name": "web"}, None),  # no apiVersion: names nothing, both refuse
]

_CONFIGS: list[dict[str, list[Any]]] = [
    {"varReference": [{"path": "spec/message", "kind": "Widget"}]},
    {"nameReference": [{"kind": "ConfigMap", "version": "v1",
                        "fieldSpecs": [{"path": "spec/cfg", "kind": "Widget"}]}]},
    {"namePrefix": [{"path": "spec/alias", "kind": "Widget"}]},
    {"nameSuffix": [{"path": "metadata/name", "kind": "Deployment"}]},
    {"images": [{"path": "spec/image", "kind": "Widget"}], "replicas": [{"path": "spec/size", "kind": "Widget"}]},
    {"commonLabels": [{"path": "spec/labels", "kind": "Widget", "create": True}]},
]


def _layer(rng: random.Random, *, component: bool) -> dict[str, Any]:
    layer: dict[str, Any] = (
        {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component"} if component else {})
    if rng.random() < 0.5:
        layer["namePrefix"] = rng.choice(["p-", "q-"])
    if rng.random() < 0.3:
        layer["nameSuffix"] = rng.choice(["-s", "-t"])
    if rng.random() < 0.3:
        layer["namespace"] = rng.choice(["ns1", "ns2"])
    if rng.random() < 0.3:
        layer["images"] = [{"name": "nginx", "newTag": rng.choice(["2", "3"])}]
    if rng.random() < 0.3:
        layer["commonLabels"] = {"team": rng.choice(["a", "b"])}
    if set(layer) <= {"apiVersion", "kind"}:
        layer["commonAnnotations"] = {"layer": "x"}  # kustomize refuses an empty kustomization; Convoy does not
    return layer


def _stack(seed: int, root: pathlib.Path) -> None:
    rng = random.Random(seed)
    names = ["base", "mid", "top"] + (["comp"] if rng.random() < 0.5 else [])
    layers = {name: _layer(rng, component=name == "comp") for name in names}
    layers["base"]["resources"] = ["objects.yaml"]
    layers["base"]["configMapGenerator"] = [{"name": "cfg", "literals": ["k=v"]}]
    layers["mid"]["resources"] = ["../base"]
    layers["top"]["resources"] = ["../mid"]
    if "comp" in layers:
        layers["top"]["components"] = ["../comp"]
    files: dict[str, str] = {"base/objects.yaml": yaml.safe_dump_all(_OBJECTS)}
    if rng.random() < 0.3:  # metadata.namespace is there only when some layer sets a namespace
        layers[rng.choice(names)].setdefault("vars", []).append(
            {"name": "NS", "objref": {"kind": "Service", "name": "web", "version": "v1"},
             "fieldref": {"fieldpath": "metadata.namespace"}})
    for index in range(5):
        if rng.random() < 0.15:
            continue  # an undeclared $(V) stays as written
        objref, path = _TARGETS[rng.randrange(len(_TARGETS) - 1)] if rng.random() < 0.98 else _TARGETS[-1]
        var: dict[str, Any] = {"name": f"V{index}", "objref": objref}
        if path:
            var["fieldref"] = {"fieldpath": path}
        where = rng.sample(names, 2 if rng.random() < 0.05 else 1)
        for name in where:
            layers[name].setdefault("vars", []).append(var)
    for name in names:
        if rng.random() < 0.35:
            chosen = rng.sample(_CONFIGS, rng.randint(1, 3))
            config: dict[str, Any] = {}
            for part in chosen:
                for key, value in part.items():
                    config.setdefault(key, []).extend(value)
            files[f"{name}/config.yaml"] = yaml.safe_dump(config)
            layers[name]["configurations"] = ["config.yaml"]
    for name, layer in layers.items():
        files[f"{name}/kustomization.yaml"] = yaml.safe_dump(layer)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.kubectl
# 65, 83, 127 and 176: a component's field specs re-merged as kustomize re-merges them (found by a longer run).
@pytest.mark.parametrize("seed", [*range(40), 65, 83, 127, 176])
def test_random_vars_and_configurations_equal_kubectl(seed: int, kubectl: str, tmp_path: pathlib.Path) -> None:
    _stack(seed, tmp_path)
    proc = subprocess.run([kubectl, "kustomize", str(tmp_path / "top")], capture_output=True, check=False,
                          timeout=120)
    fs = repofs.DirectoryFS(tmp_path)
    if proc.returncode != 0:
        with pytest.raises(RenderError):
            build(fs, "top")
        return
    expected = [doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None]
    result = build(fs, "top")
    assert result.engine == "native"
    assert result.objects == expected
