"""The Kubernetes list schema: the merge keys and list types both merges rely on."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from protos.k8s_schema import ListSchema, Shape, is_builtin, schema_for


def _pod_spec(group: str, kind: str) -> object:
    schema = schema_for(group, kind)
    if kind == "CronJob":
        schema = schema.field("spec").field("jobTemplate")
    return schema.field("spec").field("template").field("spec")


@pytest.mark.parametrize(
    ("group", "kind"),
    [("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("batch", "Job"),
     ("batch", "CronJob"), ("", "ReplicationController")],
)
def test_pod_templates_key_containers_by_name(group: str, kind: str) -> None:
    pod = _pod_spec(group, kind)
    containers = pod.field("containers")  # type: ignore[attr-defined]
    assert containers.list == ListSchema("map", ("name",), "merge", "name")
    container = containers.items()
    assert container.field("ports").list == ListSchema(
        "map", ("containerPort", "protocol"), "merge", "containerPort", key_defaults=(("protocol", "TCP"),))
    assert container.field("env").list == ListSchema("map", ("name",), "merge", "name")
    assert container.field("volumeMounts").list == ListSchema("map", ("mountPath",), "merge", "mountPath")
    assert pod.field("volumes").list == ListSchema("map", ("name",), "merge,retainKeys", "name")  # type: ignore[attr-defined]
    assert pod.field("imagePullSecrets").list.type == "map"  # type: ignore[attr-defined]
    assert pod.field("imagePullSecrets").list.keys == ("name",)  # type: ignore[attr-defined]
    assert pod.field("tolerations").list.type == "atomic"  # type: ignore[attr-defined]
    assert not pod.field("tolerations").list.merges  # type: ignore[attr-defined]


def test_service_ports_and_metadata() -> None:
    service = schema_for("", "Service")
    ports = service.field("spec").field("ports").list
    assert ports is not None
    assert (ports.type, ports.keys, ports.patch_merge_key) == ("map", ("port", "protocol"), "port")
    assert ports.key_defaults == (("protocol", "TCP"),)
    meta = service.field("metadata")
    assert meta.field("labels").is_map_of_values
    assert meta.field("labels").field("app").shape is Shape.SCALAR
    assert meta.field("finalizers").list == ListSchema("set", (), "merge", None)
    assert meta.field("ownerReferences").list.keys == ("uid",)  # type: ignore[union-attr]
    assert schema_for("core", "Service") is service


def test_struct_markers() -> None:
    deployment = schema_for("apps", "Deployment")
    assert deployment.field("spec").field("strategy").patch_strategy == "retainKeys"
    assert deployment.field("spec").field("selector").atomic  # LabelSelector is map-type atomic
    assert deployment.field("spec").has_field("replicas")
    assert not deployment.field("metadata").field("labels").has_field("app")


def test_unknown_fields_are_permissive() -> None:
    spec = schema_for("apps", "Deployment").field("spec")
    assert spec.field("noSuchField").is_untyped
    assert spec.field("noSuchField").field("deeper").items().is_untyped


@pytest.mark.parametrize(
    ("group", "kind"),
    [("", "ConfigMap"), ("", "Secret"), ("", "Namespace"), ("", "ServiceAccount"), ("apps", "ReplicaSet"),
     ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "RoleBinding"),
     ("networking.k8s.io", "Ingress"), ("networking.k8s.io", "NetworkPolicy"), ("policy", "PodDisruptionBudget"),
     ("autoscaling", "HorizontalPodAutoscaler"), ("coordination.k8s.io", "Lease"),
     ("storage.k8s.io", "StorageClass"), ("apiextensions.k8s.io", "CustomResourceDefinition")],
)
def test_required_groups_are_covered(group: str, kind: str) -> None:
    assert is_builtin(group, kind)
    assert schema_for(group, kind).field("metadata").field("labels").is_map_of_values


def test_hpa_is_autoscaling_v2() -> None:
    data = json.loads(resources.files("protos").joinpath("k8s_listschema.json").read_text())
    assert data["kinds"]["autoscaling/HorizontalPodAutoscaler"]["v"] == "v2"
    assert "swagger.json" in data["_source"]
    metrics = schema_for("autoscaling", "HorizontalPodAutoscaler").field("spec").field("metrics")
    assert metrics.list is not None and metrics.list.type == "atomic"


def test_custom_resource_without_schema_is_untyped_with_object_meta() -> None:
    assert not is_builtin("example.com", "Widget")
    widget = schema_for("example.com", "Widget")
    assert widget.field("spec").is_untyped
    assert widget.field("spec").field("items").list_or_atomic.type == "atomic"
    assert widget.field("metadata").field("ownerReferences").list.keys == ("uid",)  # type: ignore[union-attr]


def test_custom_resource_with_crd_schema() -> None:
    crd_schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                              "x-kubernetes-list-map-keys": ["name"],
                              "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "plain": {"type": "array", "items": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "size": {"x-kubernetes-int-or-string": True},
                },
            }
        },
    }
    widget = schema_for("example.com", "Widget", crd_schema=crd_schema)
    spec = widget.field("spec")
    assert spec.field("ports").list == ListSchema("map", ("name",))
    assert spec.field("tags").list == ListSchema("set")
    assert spec.field("plain").list == ListSchema("atomic")
    assert spec.field("labels").is_map_of_values
    assert spec.field("raw").is_untyped
    assert spec.field("size").shape is Shape.SCALAR
    assert widget.field("metadata").field("labels").is_map_of_values
    assert spec.has_field("ports") and not spec.has_field("nope")
