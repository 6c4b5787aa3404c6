"""Properties of server-side apply (issue 2): idempotence, disjoint managers, dropped fields vanish."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim import fieldsets
from kubesim.apply import server_side_apply
from kubesim.defaults import apply_defaults
from protos.k8s_schema import schema_for

SCHEMA = schema_for("apps", "Deployment")
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"

keys = st.text(alphabet="abcdefghij", min_size=1, max_size=4)
values = st.text(alphabet="xyz0123", min_size=0, max_size=3)
label_maps = st.dictionaries(keys, values, max_size=4)
container_names = st.lists(keys, min_size=1, max_size=3, unique=True)


@st.composite
def containers(draw: st.DrawFn, names: list[str] | None = None) -> list[dict[str, Any]]:
    chosen = names if names is not None else draw(container_names)
    out = []
    for name in chosen:
        container: dict[str, Any] = {"name": name, "image": draw(values) or "img"}
        env = draw(st.dictionaries(keys, values, max_size=3))
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        ports = draw(st.lists(st.integers(1, 65535), max_size=2, unique=True))
        if ports:
            container["ports"] = [{"containerPort": p} for p in ports]
        out.append(container)
    return out


def manifest(*, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
             replicas: int | None = None, pod: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
    if pod is not None:
        spec["template"] = {"spec": {"containers": pod}}
    obj: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta}
    if spec:
        obj["spec"] = spec
    return obj


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    # At least one owned field: a manifest that owns nothing leaves the object untracked, and the
    # next apply records its fields under `before-first-apply` (on a real server too).
    return manifest(
        labels=draw(st.dictionaries(keys, values, min_size=1, max_size=4)),
        annotations=draw(label_maps),
        replicas=draw(st.none() | st.integers(0, 5)),
        pod=draw(st.none() | containers()),
    )


def apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str, now: str,
          force: bool = False) -> dict[str, Any]:
    result = server_side_apply(live, config, manager=manager, force=force, api_version="apps/v1",
                               schema=SCHEMA, now=now)
    apply_defaults("apps", "v1", "Deployment", result)
    return result


def owned(obj: dict[str, Any], manager: str) -> frozenset[fieldsets.Path]:
    for entry in obj["metadata"].get("managedFields", []):
        if entry["manager"] == manager:
            return fieldsets.from_fields_v1(entry["fieldsV1"])
    return frozenset()


@settings(max_examples=150, deadline=None)
@given(config=manifests(), later=st.sampled_from([T1, T2]))
def test_applying_the_same_manifest_twice_is_a_no_op(config: dict[str, Any], later: str) -> None:
    first = apply(None, config, "kubectl", T0)
    second = apply(first, copy.deepcopy(config), "kubectl", later)
    assert second == first  # object and managedFields, time included: nothing changed


@settings(max_examples=150, deadline=None)
@given(
    shared_names=st.lists(keys, min_size=2, max_size=6, unique=True),
    split=st.integers(1, 5),
    data=st.data(),
)
def test_managers_owning_disjoint_fields_never_conflict(shared_names: list[str], split: int,
                                                       data: st.DataObject) -> None:
    cut = min(split, len(shared_names) - 1)
    mine, theirs = shared_names[:cut], shared_names[cut:]
    a = manifest(labels={k: data.draw(values) for k in mine},
                 pod=data.draw(containers(names=[f"a-{k}" for k in mine])))
    b = manifest(annotations={k: data.draw(values) for k in theirs}, replicas=data.draw(st.integers(0, 5)))
    obj = apply(None, a, "alpha", T0)
    obj = apply(obj, b, "beta", T1)  # raises ApplyConflictError on a conflict
    obj = apply(obj, a, "alpha", T2)
    assert obj["metadata"]["labels"] == a["metadata"]["labels"]
    assert obj["metadata"].get("annotations", {}) == b["metadata"].get("annotations", {})
    assert owned(obj, "alpha").isdisjoint(owned(obj, "beta"))


@settings(max_examples=150, deadline=None)
@given(config=manifests(), data=st.data())
def test_a_field_dropped_by_its_only_manager_disappears(config: dict[str, Any], data: st.DataObject) -> None:
    labels = config["metadata"].get("labels") or {"seed": "x"}
    config["metadata"]["labels"] = labels
    dropped = data.draw(st.sampled_from(sorted(labels)))
    created = apply(None, config, "kubectl", T0)
    narrowed = copy.deepcopy(config)
    del narrowed["metadata"]["labels"][dropped]
    result = apply(created, narrowed, "kubectl", T1)
    assert dropped not in (result["metadata"].get("labels") or {})
    assert ("f:metadata", "f:labels", "f:" + dropped) not in owned(result, "kubectl")

    pod = config.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    if pod and len(pod) > 1:
        without_last = copy.deepcopy(config)
        without_last["spec"]["template"]["spec"]["containers"] = pod[:-1]
        trimmed = apply(created, without_last, "kubectl", T1)
        names = [c["name"] for c in trimmed["spec"]["template"]["spec"]["containers"]]
        assert names == [c["name"] for c in pod[:-1]]


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["alpha", "beta", "gamma"]), manifests(), st.booleans()),
                      min_size=1, max_size=5))
def test_ownership_only_ever_names_fields_the_object_has(steps: list[tuple[str, dict[str, Any], bool]]) -> None:
    from kubesim.apply import ApplyConflictError

    obj: dict[str, Any] | None = None
    for index, (manager, config, force) in enumerate(steps):
        try:
            obj = apply(obj, config, manager, f"2026-01-01T00:0{index}:00Z", force=force)
        except ApplyConflictError as conflict:
            assert not force and conflict.conflicts
            continue
        present = fieldsets.ensure_named_fields_are_members(fieldsets.to_field_set(obj, SCHEMA), SCHEMA)
        for entry in obj["metadata"].get("managedFields", []):
            assert fieldsets.from_fields_v1(entry["fieldsV1"]) <= present, entry["manager"]
        # What the last applier asked for is what the object now says.
        for key, value in (config["metadata"].get("labels") or {}).items():
            assert obj["metadata"]["labels"][key] == value
        if "replicas" in config.get("spec", {}):
            assert obj["spec"]["replicas"] == config["spec"]["replicas"]


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["kubectl-edit", "OpenAPI-Generator", "kubectl"]), manifests(),
                                st.booleans()), min_size=1, max_size=5))
def test_updates_and_applies_keep_ownership_consistent(steps: list[tuple[str, dict[str, Any], bool]]) -> None:
    from kubesim.apply import ApplyConflictError, record_update

    obj: dict[str, Any] | None = None
    for index, (manager, config, as_apply) in enumerate(steps):
        now = f"2026-01-01T00:0{index}:00Z"
        if as_apply or obj is None:
            try:
                obj = apply(obj, config, manager, now)
            except ApplyConflictError:
                continue
        else:
            new = copy.deepcopy(obj)
            new["metadata"]["labels"] = {**(new["metadata"].get("labels") or {}), **config["metadata"]["labels"]}
            new["metadata"]["managedFields"] = record_update(obj, new, manager=manager, api_version="apps/v1",
                                                             subresource=None, schema=SCHEMA, now=now)
            changed = {k for k, v in config["metadata"]["labels"].items()
                       if (obj["metadata"].get("labels") or {}).get(k) != v}
            obj = new
            updater = [e for e in obj["metadata"].get("managedFields", [])
                       if (e["manager"], e["operation"]) == (manager, "Update")]
            mine = fieldsets.from_fields_v1(updater[0]["fieldsV1"]) if updater else frozenset()
            assert {("f:metadata", "f:labels", "f:" + k) for k in changed} <= mine
            for entry in obj["metadata"].get("managedFields", []):
                if (entry["manager"], entry["operation"]) != (manager, "Update"):
                    theirs = fieldsets.from_fields_v1(entry["fieldsV1"])
                    assert not any(("f:metadata", "f:labels", "f:" + k) in theirs for k in changed)
        present = fieldsets.ensure_named_fields_are_members(fieldsets.to_field_set(obj, SCHEMA), SCHEMA)
        for entry in obj["metadata"].get("managedFields", []):
            assert fieldsets.from_fields_v1(entry["fieldsV1"]) <= present, entry
