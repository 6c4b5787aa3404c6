"""Create/update validation of built-in kinds: the required fields a real API server insists on.

Only the checks a GitOps agent's manifests commonly trip (``pkg/apis/*/validation``): pod templates
need containers with a name and an image, workload selectors are required and must match the
template labels, replicas are not negative, Services need ports, Secrets and ConfigMaps hold at most
1 MiB (``MAX_DATA_BYTES``, the size etcd's request limit forces upstream). Messages follow upstream.

Pure: ``violations(group, kind, obj)`` returns ``(reason, field, message)`` causes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DATA_BYTES", "violations"]

#: upstream ``MaxSecretSize``, also the ConfigMap limit: the bytes of all values together
MAX_DATA_BYTES = 1024 * 1024

Cause = tuple[str, str, str]
_WORKLOADS = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet")}


def _go_map(values: Mapping[str, Any]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(values.items())) + "}"


def _pod_spec(spec: Any, path: str, causes: list[Cause]) -> None:
    if not isinstance(spec, Mapping):
        causes.append(("FieldValueRequired", f"{path}.containers", "Required value"))
        return
    containers = spec.get("containers")
    if not containers:
        causes.append(("FieldValueRequired", f"{path}.containers", "Required value"))
        return
    seen: set[str] = set()
    for index, container in enumerate(containers if isinstance(containers, list) else []):
        where = f"{path}.containers[{index}]"
        if not isinstance(container, Mapping):
            continue
        name = container.get("name")
        if not name:
            causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
        elif name in seen:
            causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{name}"'))
        else:
            seen.add(str(name))
        if not container.get("image"):
            causes.append(("FieldValueRequired", f"{where}.image", "Required value"))


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (op == "In" and (not present or labels[key] not in values)) or (
                op == "NotIn" and present and labels[key] in values) or (
                op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _decoded_len(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


def _data_size(kind: str, obj: Mapping[str, Any]) -> int:
    """Bytes of a Secret's or ConfigMap's values as upstream counts them (decoded, keys excluded)."""
    data = obj.get("data") if isinstance(obj.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    if kind == "Secret":
        text = obj.get("stringData") if isinstance(obj.get("stringData"), Mapping) else {}
        assert isinstance(text, Mapping)
        return sum(_decoded_len(v) for v in data.values()) + sum(len(str(v).encode()) for v in text.values())
    binary = obj.get("binaryData") if isinstance(obj.get("binaryData"), Mapping) else {}
    assert isinstance(binary, Mapping)
    return sum(len(str(v).encode()) for v in data.values()) + sum(_decoded_len(v) for v in binary.values())


def violations(group: str, kind: str, obj: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    if (group, kind) in _WORKLOADS:
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            causes.append(("FieldValueInvalid", "spec.replicas",
                           f"Invalid value: {replicas}: must be greater than or equal to 0"))
        selector = spec.get("selector")
        template = spec.get("template") if isinstance(spec.get("template"), Mapping) else {}
        assert isinstance(template, Mapping)
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(("FieldValueInvalid", "spec.selector",
                           "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                           "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
                           "deployment" if kind == "Deployment" else "Invalid value: empty selector is invalid"))
        if selector and not _selector_matches(selector, labels):
            causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                           f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`"))
        _pod_spec(template.get("spec"), "spec.template.spec", causes)
    elif (group, kind) == ("batch", "Job"):
        template = spec.get("template") if isinstance(spec.get("template"), Mapping) else {}
        assert isinstance(template, Mapping)
        _pod_spec(template.get("spec"), "spec.template.spec", causes)
        restart = (template.get("spec") or {}).get("restartPolicy")
        if restart not in ("OnFailure", "Never"):
            causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                           f'Unsupported value: "{restart or "Always"}": supported values: "OnFailure", "Never"'))
    elif (group, kind) in {("", "Secret"), ("", "ConfigMap")}:
        size = _data_size(kind, obj)
        if size > MAX_DATA_BYTES:
            causes.append(("FieldValueTooLong", "data" if kind == "Secret" else "",
                           f"Too long: must have at most {MAX_DATA_BYTES} bytes"))
    elif (group, kind) == ("", "Pod"):
        _pod_spec(spec, "spec", causes)
    elif (group, kind) == ("", "Service"):
        headless = spec.get("clusterIP") == "None"
        if spec.get("type") != "ExternalName" and not headless and not spec.get("ports"):
            causes.append(("FieldValueRequired", "spec.ports", "Required value"))
    return causes
