"""Strategic merge patch: table-driven cases, each also checked against `kubectl patch --local`."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesim.strategic_merge import StrategicMergeError, apply_patch
from protos.k8s_schema import schema_for

FIXTURES: dict[str, dict[str, Any]] = yaml.safe_load(
    """
deployment:
  apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: web
    finalizers: [a, b]
    labels: {app: web, tier: front}
  spec:
    replicas: 2
    strategy:
      type: RollingUpdate
      rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
    template:
      spec:
        tolerations: [{key: a, operator: Exists}]
        volumes:
        - name: cfg
          configMap: {name: cfg}
        - name: data
          emptyDir: {}
        containers:
        - name: web
          image: web:1
          ports:
          - {containerPort: 80, protocol: TCP, name: http}
          - {containerPort: 443, protocol: TCP}
          env:
          - {name: A, value: "1"}
          - {name: B, value: "2"}
          volumeMounts:
          - {name: cfg, mountPath: /etc/cfg}
        - name: side
          image: side:1
service:
  apiVersion: v1
  kind: Service
  metadata: {name: web}
  spec:
    selector: {app: web}
    ports:
    - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"""
)

# Each case: fixture, patch, and either `expect` (dotted path -> value in the result; a path
# segment `name=web` picks a list item) or `error` (a substring of the StrategicMergeError).
CASES: list[dict[str, Any]] = yaml.safe_load(
    r"""
- id: map-merge-and-null-deletes
  fixture: deployment
  patch: {metadata: {labels: {tier: null, env: prod}}}
  expect: {metadata.labels: {app: web, env: prod}}
- id: scalar-replaces
  fixture: deployment
  patch: {spec: {replicas: 5}}
  expect: {spec.replicas: 5}
- id: null-removes-whole-subtree
  fixture: deployment
  patch: {spec: {template: null}}
  expect: {spec: {replicas: 2, strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}}}
- id: unmatched-nulls-are-dropped
  fixture: deployment
  patch: {metadata: {annotations: {gone: null, kept: "1"}}}
  expect: {metadata.annotations: {kept: "1"}}
- id: keyed-list-merges-on-merge-key-and-new-items-come-first
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: web, image: web:2}, {name: extra, image: x}]}}}}
  expect:
    spec.template.spec.containers[name=web].image: web:2
    spec.template.spec.containers[name=web].env: [{name: A, value: "1"}, {name: B, value: "2"}]
    spec.template.spec.containers.names: [web, extra, side]
- id: new-item-alone-goes-before-live-items
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: extra, image: x}]}}}}
  expect: {spec.template.spec.containers.names: [extra, web, side]}
- id: nested-keyed-lists-env
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: web, env: [{name: C, value: "3"}, {name: A, value: x}]}]}}}}
  expect:
    spec.template.spec.containers[name=web].env: [{name: C, value: "3"}, {name: A, value: x}, {name: B, value: "2"}]
- id: ports-merge-on-container-port
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: web, ports: [{containerPort: 80, name: web}]}]}}}}
  expect:
    spec.template.spec.containers[name=web].ports:
    - {containerPort: 80, protocol: TCP, name: web}
    - {containerPort: 443, protocol: TCP}
- id: volume-mounts-merge-on-mount-path
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: web, volumeMounts: [{name: data, mountPath: /data}]}]}}}}
  expect:
    spec.template.spec.containers[name=web].volumeMounts:
    - {name: data, mountPath: /data}
    - {name: cfg, mountPath: /etc/cfg}
- id: atomic-list-replaces
  fixture: deployment
  patch: {spec: {template: {spec: {tolerations: [{key: b, operator: Exists}]}}}}
  expect: {spec.template.spec.tolerations: [{key: b, operator: Exists}]}
- id: service-ports-merge-on-port
  fixture: service
  patch: {spec: {ports: [{port: 80, targetPort: 9090}, {port: 443, name: https}]}}
  expect:
    spec.ports:
    - {name: http, port: 80, targetPort: 9090, protocol: TCP}
    - {port: 443, name: https}
- id: patch-delete-list-item
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: side, $patch: delete}]}}}}
  expect: {spec.template.spec.containers.names: [web]}
- id: patch-delete-item-and-add-another
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: web, $patch: delete}, {name: n, image: n}]}}}}
  expect: {spec.template.spec.containers.names: [n, side]}
- id: patch-replace-list
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: only, image: o}, {$patch: replace}]}}}}
  expect: {spec.template.spec.containers: [{name: only, image: o}]}
- id: patch-replace-map
  fixture: deployment
  patch: {spec: {strategy: {$patch: replace, type: Recreate}}}
  expect: {spec.strategy: {type: Recreate}}
- id: patch-delete-map-leaves-empty-map
  fixture: deployment
  patch: {metadata: {labels: {$patch: delete}}}
  expect: {metadata.labels: {}}
- id: patch-merge-in-map-is-rejected
  fixture: deployment
  patch: {metadata: {labels: {$patch: merge}}}
  error: "unknown patch type: merge"
- id: patch-merge-in-list-is-rejected
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{$patch: merge}]}}}}
  error: merging lists cannot yet be specified
- id: unknown-directive-is-rejected
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{name: web, $patch: bogus}]}}}}
  error: "unknown patch type: bogus"
- id: missing-merge-key-is-rejected
  fixture: deployment
  patch: {spec: {template: {spec: {containers: [{image: b}]}}}}
  error: "does not contain declared merge key: name"
- id: retain-keys-clears-other-keys
  fixture: deployment
  patch: {spec: {strategy: {$retainKeys: [type], type: Recreate}}}
  expect: {spec.strategy: {type: Recreate}}
- id: retain-keys-rejects-a-key-it-does-not-list
  fixture: deployment
  patch: {spec: {strategy: {$retainKeys: [type], type: Recreate, rollingUpdate: {maxSurge: 2}}}}
  error: retainKeys
- id: retain-keys-in-volume-item
  fixture: deployment
  patch: {spec: {template: {spec: {volumes: [{name: cfg, $retainKeys: [name, secret], secret: {secretName: s}}]}}}}
  expect:
    spec.template.spec.volumes: [{name: cfg, secret: {secretName: s}}, {name: data, emptyDir: {}}]
- id: primitive-list-merges-as-union
  fixture: deployment
  patch: {metadata: {finalizers: [c, a]}}
  expect: {metadata.finalizers: [c, a, b]}
- id: delete-from-primitive-list
  fixture: deployment
  patch: {metadata: {$deleteFromPrimitiveList/finalizers: [a], finalizers: [c]}}
  expect: {metadata.finalizers: [c, b]}
- id: delete-from-primitive-list-of-absent-field-is-a-no-op
  fixture: service
  patch: {metadata: {$deleteFromPrimitiveList/finalizers: [x]}}
  expect: {metadata: {name: web}}
- id: set-element-order-primitives
  fixture: deployment
  patch: {metadata: {$setElementOrder/finalizers: [b, c, a], finalizers: [c]}}
  expect: {metadata.finalizers: [b, c, a]}
- id: set-element-order-reorders-keyed-list
  fixture: deployment
  patch: {spec: {template: {spec: {$setElementOrder/containers: [{name: side}, {name: web}]}}}}
  expect: {spec.template.spec.containers.names: [side, web]}
- id: set-element-order-must-match-patch
  fixture: deployment
  patch: {spec: {template: {spec: {$setElementOrder/volumes: [{name: w}, {name: v}], volumes: [{name: v}, {name: w}]}}}}
  error: doesn't match $setElementOrder
- id: absent-field-takes-patch-without-directives
  fixture: service
  patch: {spec: {sessionAffinityConfig: {$patch: replace, clientIP: {}}, externalIPs: [1.2.3.4]}}
  expect: {spec.externalIPs: [1.2.3.4], spec.sessionAffinityConfig: null}
- id: absent-list-drops-delete-items
  fixture: service
  patch: {metadata: {ownerReferences: [{uid: u1, $patch: delete}]}}
  expect: {metadata.ownerReferences: []}
- id: type-change-replaces
  fixture: deployment
  patch: {metadata: {labels: notamap}}
  expect: {metadata.labels: notamap}
"""
)


def _lookup(obj: Any, path: str) -> Any:
    current: Any = obj
    for segment in path.split("."):
        if segment == "names":
            return [item["name"] for item in current or ()]
        name, _, selector = segment.partition("[")
        current = current.get(name) if isinstance(current, dict) else None
        assert selector == "" or isinstance(current, list), path
        if selector:
            key, _, value = selector.rstrip("]").partition("=")
            current = next(item for item in current if item.get(key) == value)
    return current


def _run(case: dict[str, Any]) -> dict[str, Any]:
    original = FIXTURES[case["fixture"]]
    group = original["apiVersion"].rpartition("/")[0]
    return apply_patch(original, case["patch"], schema=schema_for(group, original["kind"]))


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_strategic_merge_case(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(StrategicMergeError, match=re.escape(case["error"])):
            _run(case)
        return
    result = _run(case)
    for path, expected in case["expect"].items():
        assert _lookup(result, path) == expected, path


def test_inputs_are_not_modified() -> None:
    original = copy.deepcopy(FIXTURES["deployment"])
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": "delete"}]}}},
             "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"app": None}}}
    patch_before = copy.deepcopy(patch)
    apply_patch(original, patch, schema=schema_for("apps", "Deployment"))
    assert original == FIXTURES["deployment"]
    assert patch == patch_before


def test_strip_directives_drops_what_the_typed_decode_would() -> None:
    patch = {"spec": {"template": {"spec": {"volumes": [
        {"name": "new", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s"}}]}}}}
    schema = schema_for("apps", "Deployment")
    kept = apply_patch(FIXTURES["deployment"], patch, schema=schema)
    assert kept["spec"]["template"]["spec"]["volumes"][0]["$retainKeys"] == ["name", "secret"]
    stripped = apply_patch(FIXTURES["deployment"], patch, schema=schema, strip_directives=True)
    assert stripped["spec"]["template"]["spec"]["volumes"][0] == {"name": "new", "secret": {"secretName": "s"}}


def test_custom_resource_lists_replace_and_maps_merge() -> None:
    original = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"items": [{"name": "a"}, {"name": "b"}], "opts": {"x": 1, "y": 2}}}
    patch = {"spec": {"items": [{"name": "c"}], "opts": {"y": None, "z": 3}}}
    result = apply_patch(original, patch, schema=schema_for("example.com", "Widget"))
    assert result["spec"] == {"items": [{"name": "c"}], "opts": {"x": 1, "z": 3}}


def test_non_object_patch_is_rejected() -> None:
    with pytest.raises(StrategicMergeError, match="JSON object"):
        apply_patch({}, [1, 2], schema=schema_for("", "ConfigMap"))  # type: ignore[arg-type]


@pytest.mark.kubectl
@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_matches_kubectl_patch(case: dict[str, Any], kubectl: str, tmp_path: Path) -> None:
    """The oracle: `kubectl patch --local --type strategic` on the same object and patch."""
    source = tmp_path / "object.yaml"
    source.write_text(yaml.safe_dump(FIXTURES[case["fixture"]]))
    done = subprocess.run(
        [kubectl, "patch", "--local", "-f", str(source), "--type", "strategic", "-o", "json",
         "-p", json.dumps(case["patch"])],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if "error" in case:
        assert done.returncode != 0, done.stdout
        with pytest.raises(StrategicMergeError):
            _run(case)
        return
    assert done.returncode == 0, done.stderr
    assert _run(case) == json.loads(done.stdout)


# -- generated patches against the oracle ---------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = ["web", "side", "extra", "more"]


@st.composite
def _patches(draw: st.DrawFn) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if draw(st.booleans()):
        metadata["labels"] = draw(st.dictionaries(st.sampled_from(["app", "tier", "x"]),
                                                  st.none() | st.sampled_from(["1", "2"]), max_size=3))
    if draw(st.booleans()):
        metadata["finalizers"] = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3, unique=True))
    if draw(st.booleans()):
        # Never a value the same patch adds: upstream processes the two keys in Go's random map
        # order, so such a patch has no single answer (and kubectl never generates one).
        added = metadata.get("finalizers", [])
        metadata["$deleteFromPrimitiveList/finalizers"] = draw(st.lists(
            st.sampled_from([f for f in ("a", "b", "c") if f not in added] or ["z"]), max_size=2, unique=True))
    if metadata:
        patch["metadata"] = metadata
    pod: dict[str, Any] = {}
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(_NAMES), max_size=3, unique=True))
        containers: list[dict[str, Any]] = []
        for name in names:
            item: dict[str, Any] = {"name": name}
            kind = draw(st.sampled_from(["image", "env", "delete", "replace-ports"]))
            if kind == "image":
                item["image"] = draw(st.sampled_from(["x:1", "y:2"]))
            elif kind == "env":
                item["env"] = [{"name": n, "value": "v"} for n in draw(
                    st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=2, unique=True))]
            elif kind == "delete":
                item["$patch"] = "delete"
            else:
                item["ports"] = [{"containerPort": draw(st.sampled_from([80, 8080]))}]
            containers.append(item)
        pod["containers"] = containers
        if draw(st.booleans()):
            kept = [n for n in names if not any(c["name"] == n and "$patch" in c for c in containers)]
            rest = [n for n in ("web", "side") if n not in kept]
            pod["$setElementOrder/containers"] = [{"name": n} for n in kept + rest]
    if draw(st.booleans()):
        pod["tolerations"] = [{"key": draw(st.sampled_from(["a", "b"])), "operator": "Exists"}]
    if pod:
        patch["spec"] = {"template": {"spec": pod}}
    return patch


@pytest.mark.kubectl
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(patch=_patches())
def test_generated_patches_match_kubectl(patch: dict[str, Any], kubectl: str, tmp_path: Path) -> None:
    source = tmp_path / "deployment.yaml"
    source.write_text(yaml.safe_dump(FIXTURES["deployment"]))
    done = subprocess.run(
        [kubectl, "patch", "--local", "-f", str(source), "--type", "strategic", "-o", "json", "-p", json.dumps(patch)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    try:
        mine: Any = apply_patch(FIXTURES["deployment"], patch, schema=schema_for("apps", "Deployment"))
    except StrategicMergeError as exc:
        mine = exc
    if done.returncode != 0:
        assert isinstance(mine, StrategicMergeError), (done.stderr, mine)
    else:
        assert mine == json.loads(done.stdout)


@st.composite
def _volume_and_port_patches(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    if draw(st.booleans()):
        ports = []
        for port in draw(st.lists(st.sampled_from([80, 443, 8080]), max_size=3, unique=True)):
            item: dict[str, Any] = {"port": port}
            choice = draw(st.sampled_from(["target", "name", "delete", "udp"]))
            if choice == "target":
                item["targetPort"] = draw(st.sampled_from([8080, "http"]))
            elif choice == "name":
                item["name"] = draw(st.sampled_from(["http", "https"]))
            elif choice == "delete":
                item["$patch"] = "delete"
            else:
                item["protocol"] = "UDP"
            ports.append(item)
        spec: dict[str, Any] = {"ports": ports}
        if draw(st.booleans()):
            spec["selector"] = {"app": draw(st.sampled_from(["web", "api"]))}
        return "service", {"spec": spec}
    volumes = []
    for name in draw(st.lists(st.sampled_from(["cfg", "data", "new"]), max_size=3, unique=True)):
        source = draw(st.sampled_from(["secret", "emptyDir", "configMap", "delete"]))
        volume: dict[str, Any] = {"name": name}
        if source == "delete":
            volume["$patch"] = "delete"
        else:
            volume[source] = {"secret": {"secretName": "s"}, "emptyDir": {}, "configMap": {"name": "c"}}[source]
            if draw(st.booleans()):
                volume["$retainKeys"] = ["name", source]
        volumes.append(volume)
    pod: dict[str, Any] = {"volumes": volumes}
    spec = {"template": {"spec": pod}}
    if draw(st.booleans()):
        spec["strategy"] = {"$retainKeys": ["type"], "type": "Recreate"} if draw(st.booleans()) else {
            "rollingUpdate": {"maxSurge": draw(st.sampled_from([2, "50%"]))}}
    return "deployment", {"spec": spec}


@pytest.mark.kubectl
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_volume_and_port_patches())
def test_generated_volume_and_port_patches_match_kubectl(case: tuple[str, dict[str, Any]], kubectl: str,
                                                         tmp_path: Path) -> None:
    fixture, patch = case
    original = FIXTURES[fixture]
    source = tmp_path / "object.yaml"
    source.write_text(yaml.safe_dump(original))
    done = subprocess.run(
        [kubectl, "patch", "--local", "-f", str(source), "--type", "strategic", "-o", "json", "-p", json.dumps(patch)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    group = original["apiVersion"].rpartition("/")[0]
    try:
        mine: Any = apply_patch(original, patch, schema=schema_for(group, original["kind"]))
    except StrategicMergeError as exc:
        mine = exc
    if done.returncode != 0:
        assert isinstance(mine, StrategicMergeError), (done.stderr, mine)
    else:
        assert mine == json.loads(done.stdout)
