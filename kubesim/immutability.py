"""Update validation for fields a real API server refuses to change (422 Invalid / Forbidden).

Only the rules a GitOps agent meets in practice: workload selectors, the StatefulSet spec, Job
selector and template, immutable ConfigMaps and Secrets, Secret type, Service cluster IPs, PVC specs
and binding roleRefs. Messages follow the upstream validators (``pkg/apis/*/validation``).

Pure: ``violations(group, kind, old, new)`` returns ``(reason, field, message)`` causes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["violations"]

Cause = tuple[str, str, str]
_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds")


def _go_map(values: Mapping[str, Any]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(values.items())) + "}"


def _go_selector(selector: Any) -> str:
    selector = selector if isinstance(selector, Mapping) else {}
    labels = selector.get("matchLabels")
    exprs = selector.get("matchExpressions")
    labels_text = _go_map(labels) if labels else "map[string]string(nil)"
    exprs_text = "[]v1.LabelSelectorRequirement(nil)" if not exprs else (
        "[]v1.LabelSelectorRequirement{" + ", ".join(
            f'v1.LabelSelectorRequirement{{Key:"{e.get("key")}", Operator:"{e.get("operator")}", '
            f'Values:[]string{{{", ".join(chr(34) + v + chr(34) for v in e.get("values") or [])}}}}}'
            for e in exprs) + "}")
    return f"v1.LabelSelector{{MatchLabels:{labels_text}, MatchExpressions:{exprs_text}}}"


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def violations(group: str, kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    old_spec, new_spec = _spec(old), _spec(new)
    workload = group == "apps" and kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")
    if workload and old_spec.get("selector") != new_spec.get("selector"):
        causes.append(("FieldValueInvalid", "spec.selector",
                       f"Invalid value: {_go_selector(new_spec.get('selector'))}: field is immutable"))
    if group == "apps" and kind == "StatefulSet":
        changed = {k for k in set(old_spec) | set(new_spec)
                   if k not in _STS_MUTABLE and k != "selector" and old_spec.get(k) != new_spec.get(k)}
        if changed:
            causes.append(("FieldValueForbidden", "spec",
                           "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                           "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                           "'minReadySeconds' are forbidden"))
    if group == "batch" and kind == "Job":
        if old_spec.get("selector") != new_spec.get("selector"):
            causes.append(("FieldValueInvalid", "spec.selector",
                           f"Invalid value: {_go_selector(new_spec.get('selector'))}: field is immutable"))
        if old_spec.get("template") != new_spec.get("template"):
            causes.append(("FieldValueInvalid", "spec.template",
                           "Invalid value: core.PodTemplateSpec{...}: field is immutable"))
    if group == "" and kind in ("ConfigMap", "Secret") and old.get("immutable") is True:
        for field in ("data", "binaryData", "immutable"):
            if old.get(field) != new.get(field):
                causes.append(("FieldValueForbidden", field,
                               "Forbidden: field is immutable when `immutable` is set"))
    if group == "" and kind == "Secret" and old.get("type") != new.get("type"):
        causes.append(("FieldValueInvalid", "type", f'Invalid value: "{new.get("type")}": field is immutable'))
    if group == "" and kind == "Service":
        old_ip, new_ip = old_spec.get("clusterIP"), new_spec.get("clusterIP")
        if old_ip and new_ip and old_ip != new_ip:
            causes.append(("FieldValueInvalid", "spec.clusterIPs[0]",
                           f'Invalid value: []string{{"{new_ip}"}}: may not change once set'))
    if group == "" and kind == "PersistentVolumeClaim":
        def without_requests(spec: Mapping[str, Any]) -> dict[str, Any]:
            out = dict(spec)
            resources = dict(out.get("resources") or {})
            resources.pop("requests", None)
            out["resources"] = resources
            out.pop("volumeAttributesClassName", None)
            return out

        if without_requests(old_spec) != without_requests(new_spec):
            causes.append(("FieldValueForbidden", "spec",
                           "Forbidden: spec is immutable after creation except resources.requests and "
                           "volumeAttributesClassName for bound claims"))
    binding = group == "rbac.authorization.k8s.io" and kind in ("RoleBinding", "ClusterRoleBinding")
    if binding and old.get("roleRef") != new.get("roleRef"):
        ref = new.get("roleRef") or {}
        causes.append(("FieldValueInvalid", "roleRef",
                       f'Invalid value: rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", '
                       f'Kind:"{ref.get("kind", "")}", Name:"{ref.get("name", "")}"}}: cannot change roleRef'))
    return causes
