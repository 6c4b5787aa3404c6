"""``vars`` in the native kustomize engine: substitution, lookup, formatting and kustomize's errors.

The whole feature is also checked against ``kubectl kustomize`` by the oracle fixtures
``80-vars-service-name`` and ``81-vars-across-layers``; these pin the rules one by one.
"""

from __future__ import annotations

import pathlib
import textwrap
from typing import Any

import pytest

from hub.render.kustomize import BuildOptions, build, build_layers, variables
from hub.tree import repofs
from hub.tree.errors import KustomizeError, LimitError

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {namespace}
spec:
  ports:
  - name: http
    port: 8080
"""

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  containers:
  - name: c
    image: busybox
    args: {args}
"""

VAR = """\
- name: {name}
  objref:
    kind: Service
    name: web
    apiVersion: v1
  fieldref:
    fieldpath: {path}
"""


def write(root: pathlib.Path, files: dict[str, str]) -> repofs.DirectoryFS:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return repofs.DirectoryFS(root)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(obj for obj in objects if obj["kind"] == kind)


def mapping(values: dict[str, Any]) -> Any:
    return lambda key: values.get(key, f"$({key})")


# -- $(VAR) expansion ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)", "alpha"),
    ("x-$(A)-$(A)", "x-alpha-alpha"),
    ("$(N)", 8080),  # a reference standing alone keeps the value's type
    ("$(T)", True),
    ("port=$(N) on=$(T) ratio=$(F) big=$(G)", "port=8080 on=true ratio=0.25 big=1.23456785e+07"),
    ("$$(A)", "$(A)"),  # $$ is a literal $
    ("$(UNKNOWN)", "$(UNKNOWN)"),  # unknown: left as written
    ("$(A", "$(A"),
    ("cost: $5", "cost: $5"),
    ("$", "$"),
])
def test_do_replacements_follows_kustomize(text: str, expected: Any) -> None:
    values = {"A": "alpha", "N": 8080, "T": True, "F": 0.25, "G": 12345678.5}
    assert variables.do_replacements(text, mapping(values)) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("metadata.name", "web"),
    ("spec.ports[0].port", 8080),
    ("spec.ports.0.name", "http"),
    ("spec.ports.[name=http].port", 8080),
    ("metadata.annotations.[example.com/key.with.dots]", "v"),
    (r"metadata.labels.app\.kubernetes\.io/name", "shop"),
])
def test_field_value_reads_kustomize_paths(path: str, expected: Any) -> None:
    obj = {"metadata": {"name": "web", "annotations": {"example.com/key.with.dots": "v"},
                        "labels": {"app.kubernetes.io/name": "shop"}},
           "spec": {"ports": [{"name": "http", "port": 8080}]}}
    assert variables.field_value(obj, path) == expected


@pytest.mark.parametrize("path", ["spec.missing", "spec.ports[3].port", "spec.ports.[name=grpc].port",
                                  "metadata.name.deeper"])
def test_field_value_missing_is_a_lookup_error(path: str) -> None:
    with pytest.raises(LookupError):
        variables.field_value({"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http"}]}}, path)


def test_parse_vars_reads_keys_case_insensitively_and_defaults_the_field_path() -> None:
    raw = [{"name": "A", "objRef": {"kind": "Service", "name": "web", "apiVersion": "v1"}},
           {"name": "B", "objref": {"kind": "Deployment", "name": "web", "group": "apps", "version": "v1"},
            "fieldRef": {"fieldPath": "spec.replicas"}}]
    first, second = variables.parse_vars(raw, file="k.yaml")
    assert (first.group, first.version, first.field_path) == ("", "v1", "metadata.name")
    assert (second.group, second.version, second.field_path) == ("apps", "v1", "spec.replicas")


def test_parse_vars_refuses_unknown_fields() -> None:
    with pytest.raises(KustomizeError, match="unknown field 'objectref'"):
        variables.parse_vars([{"name": "A", "objectref": {}}], file="k.yaml")


# -- whole builds -----------------------------------------------------------------------------------

def test_var_value_is_read_after_prefixes_hashes_and_namespace(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {
        "base/app.yaml": SERVICE.format(namespace="apps") + "---\n" + POD.format(
            args='["--svc=$(SVC).$(NS)", "$(PORT)", "--cfg=$(CFG)"]'),
        "base/kustomization.yaml": "resources: [app.yaml]\n"
                                   "configMapGenerator:\n- name: cfg\n  literals: [a=b]\n"
                                   "vars:\n" + VAR.format(name="SVC", path="metadata.name")
                                   + VAR.format(name="NS", path="metadata.namespace")
                                   + VAR.format(name="PORT", path="spec.ports[0].port")
                                   + "- name: CFG\n  objref: {kind: ConfigMap, name: cfg, apiVersion: v1}\n",
        "overlay/kustomization.yaml": "namePrefix: prod-\nnamespace: shop\nresources: [../base]\n",
    })
    result = build(fs, "overlay")
    assert result.engine == "native"
    config_map = by_kind(result.objects, "ConfigMap")["metadata"]["name"]
    assert config_map.startswith("prod-cfg-")
    args = by_kind(result.objects, "Pod")["spec"]["containers"][0]["args"]
    assert args == ["--svc=prod-web.shop", 8080, f"--cfg={config_map}"]


def test_build_layers_with_vars_and_configurations_is_native(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {
        "base/app.yaml": SERVICE.format(namespace="apps") + "---\n" + POD.format(args='["$(SVC)"]'),
        "base/kustomization.yaml": "resources: [app.yaml]\nconfigurations: [config.yaml]\n"
                                   "vars:\n" + VAR.format(name="SVC", path="metadata.name"),
        "base/config.yaml": "varReference:\n- path: metadata/labels\n",
        "env/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                                  "namePrefix: eu-\n",
    })
    result = build_layers(fs, resources=["base"], components=["env"], namespace="shop")
    assert result.engine == "native"
    assert by_kind(result.objects, "Pod")["spec"]["containers"][0]["args"] == ["eu-web"]


def test_vars_in_annotations_come_out_as_strings(tmp_path: pathlib.Path) -> None:
    pod = POD.format(args="[]").replace("  name: client\n", "  name: client\n  annotations:\n    port: $(PORT)\n")
    fs = write(tmp_path, {
        "app/app.yaml": SERVICE.format(namespace="apps") + "---\n" + pod,
        "app/kustomization.yaml": "resources: [app.yaml]\nvars:\n" + VAR.format(name="PORT", path="spec.ports[0].port"),
    })
    pod_out = by_kind(build(fs, "app").objects, "Pod")
    assert pod_out["metadata"]["annotations"] == {"port": "8080"}


@pytest.mark.parametrize(("files", "message"), [
    ({"a/kustomization.yaml": "resources: [s.yaml]\nvars:\n" + VAR.format(name="X", path="metadata.name"),
      "a/s.yaml": SERVICE.format(namespace="one"),
      "b/kustomization.yaml": "resources: [s.yaml]\nvars:\n" + VAR.format(name="X", path="metadata.name"),
      "b/s.yaml": SERVICE.format(namespace="two"),
      "app/kustomization.yaml": "resources: [../a, ../b]\n"},
     "var 'X' is declared twice (in a/kustomization.yaml and b/kustomization.yaml)"),
    ({"app/kustomization.yaml": "resources: [s.yaml]\nvars:\n" + VAR.format(name="X", path="metadata.name"),
      "app/s.yaml": SERVICE.format(namespace="one") + "---\n" + SERVICE.format(namespace="two")},
     "var 'X' could read any of 2 objects (Service/one/web, Service/two/web)"),
    ({"app/kustomization.yaml": "resources: [s.yaml]\nvars:\n- name: X\n  objref: {kind: Service, name: web}\n",
      "app/s.yaml": SERVICE.format(namespace="one")},
     "var 'X' reads Service 'web' (no apiVersion), field metadata.name, and the build has no such object"),
    ({"app/kustomization.yaml": "resources: [s.yaml]\nvars:\n" + VAR.format(name="X", path="spec.nope"),
      "app/s.yaml": SERVICE.format(namespace="one")},
     "var 'X': Service/one/web has no field spec.nope"),
    ({"app/kustomization.yaml": "resources: [s.yaml]\nvars:\n" + VAR.format(name="X", path="metadata.name"),
      "app/s.yaml": SERVICE.format(namespace="one") + "---\n" + POD.format(args='["$(X)", 1]')},
     "cannot substitute vars: args holds 1, not a string"),
])
def test_var_errors_name_the_var_and_the_file(tmp_path: pathlib.Path, files: dict[str, str], message: str) -> None:
    fs = write(tmp_path, files)
    with pytest.raises(KustomizeError) as info:
        build(fs, "app", options=BuildOptions())
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.file is not None


def test_a_var_read_many_times_is_bounded_by_the_build_bytes(tmp_path: pathlib.Path) -> None:
    # 2,000 references to a 1 MB value would make 2 GB; the build stops at its byte bound instead.
    big = "x" * 1_000_000
    fs = write(tmp_path, {
        "app/app.yaml": SERVICE.format(namespace="apps") + f"  big: {big}\n" + "---\n"
                        + POD.format(args='["' + "$(BIG)" * 2000 + '"]'),
        "app/kustomization.yaml": "resources: [app.yaml]\nvars:\n" + VAR.format(name="BIG", path="spec.big"),
    })
    with pytest.raises(LimitError) as info:
        build(fs, "app", options=BuildOptions(max_build_bytes=16 * 1024 * 1024))
    assert info.value.setting == "max_build_bytes"
    assert "vars expand the build by more than 16777216 characters" in str(info.value)
    assert info.value.obj == "Pod/client"
