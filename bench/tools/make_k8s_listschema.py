"""One-off generator of ``protos/k8s_listschema.json`` from the Kubernetes OpenAPI v2 spec.

Source: kubernetes-client/python ``kubernetes/swagger.json.unprocessed`` (the release-1.36
OpenAPI document the official client is generated from). The pip wheel does not ship it,
so it is read once from a checkout and reduced to what merging needs:

* for every resource kind (one served version per group/kind, GA before beta before alpha),
  the definition that describes it;
* for every definition reachable from those, its fields, with lists carrying their
  ``x-kubernetes-list-type`` / ``-list-map-keys`` / ``-patch-strategy`` / ``-patch-merge-key``
  markers, maps their value type, and ``x-kubernetes-map-type: atomic`` where set.

Descriptions, validation and formats are dropped. Node encoding (read by
:mod:`protos.k8s_schema`): ``"s"`` scalar, ``"*"`` untyped, ``"<type>"`` a struct,
``{"r": type, "ps": ..., "mt": ...}`` a struct with field markers, ``{"l": item, "t", "k",
"ps", "pk"}`` a list, ``{"m": value, "mt"}`` a map of values.

Usage: ``python bench/tools/make_k8s_listschema.py swagger.json.unprocessed protos/k8s_listschema.json``
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

_PREFIXES = (
    ("io.k8s.apimachinery.pkg.apis.meta.v1.", "meta.v1."),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.", "apiextensions."),
    ("io.k8s.kube-aggregator.pkg.apis.apiregistration.", "apiregistration."),
    ("io.k8s.api.", ""),
)
# Definitions that hold arbitrary JSON (or a string on the wire): structured merge treats them
# as untyped ("deduced") values and strategic merge as plain maps.
_UNTYPED = {
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
}


def short(name: str) -> str:
    for long, abbreviation in _PREFIXES:
        if name.startswith(long):
            return abbreviation + name[len(long) :]
    return name


def version_rank(version: str) -> tuple[int, int, int]:
    # Kubernetes' own priority: GA over beta over alpha, then the higher number.
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (0, 0, 0)
    stability = {"alpha": 1, "beta": 2, None: 3}[match.group(2)]
    return (stability, int(match.group(1)), int(match.group(3) or 0))


class Reducer:
    def __init__(self, definitions: dict[str, Any]) -> None:
        self.definitions = definitions
        self.types: dict[str, Any] = {}

    def ref(self, ref: str) -> Any:
        name = ref.removeprefix("#/definitions/")
        if name in _UNTYPED:
            return "*"
        definition = self.definitions[name]
        if "properties" not in definition:
            return "s" if definition.get("type") == "string" else "*"
        key = short(name)
        if key not in self.types:
            self.types[key] = {}  # reserve first: definitions are recursive (JSONSchemaProps)
            fields = {field: self.node(spec) for field, spec in sorted(definition["properties"].items())}
            reduced: dict[str, Any] = {"f": fields}
            if definition.get("x-kubernetes-map-type") == "atomic":
                reduced["mt"] = "atomic"
            self.types[key] = reduced
        return key

    def node(self, spec: dict[str, Any]) -> Any:
        if "$ref" in spec:
            target = self.ref(spec["$ref"])
            extras = {}
            if "x-kubernetes-patch-strategy" in spec:
                extras["ps"] = spec["x-kubernetes-patch-strategy"]
            if spec.get("x-kubernetes-map-type") == "atomic":
                extras["mt"] = "atomic"
            if extras and isinstance(target, str) and target not in ("s", "*"):
                return {"r": target, **extras}
            return target
        kind = spec.get("type")
        if kind == "array":
            reduced: dict[str, Any] = {"l": self.node(spec.get("items", {}))}
            if "x-kubernetes-list-type" in spec:
                reduced["t"] = spec["x-kubernetes-list-type"]
            if "x-kubernetes-list-map-keys" in spec:
                reduced["k"] = spec["x-kubernetes-list-map-keys"]
            if "x-kubernetes-patch-strategy" in spec:
                reduced["ps"] = spec["x-kubernetes-patch-strategy"]
            if "x-kubernetes-patch-merge-key" in spec:
                reduced["pk"] = spec["x-kubernetes-patch-merge-key"]
            return reduced
        if kind == "object":
            if "additionalProperties" in spec:
                reduced = {"m": self.node(spec["additionalProperties"])}
                if spec.get("x-kubernetes-map-type") == "atomic":
                    reduced["mt"] = "atomic"
                return reduced
            return "*"
        if kind in ("string", "integer", "number", "boolean"):
            return "s"
        return "*"


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as handle:
        definitions: dict[str, Any] = json.load(handle)["definitions"]
    chosen: dict[tuple[str, str], tuple[str, str]] = {}
    for name, definition in definitions.items():
        gvks = definition.get("x-kubernetes-group-version-kind") or []
        if len(gvks) != 1 or "metadata" not in definition.get("properties", {}):
            continue  # list kinds, DeleteOptions, WatchEvent and other non-resources
        gvk = gvks[0]
        if gvk["kind"].endswith("List"):
            continue
        key = (gvk["group"], gvk["kind"])
        if key not in chosen or version_rank(gvk["version"]) > version_rank(chosen[key][0]):
            chosen[key] = (gvk["version"], name)
    reducer = Reducer(definitions)
    kinds = {}
    for (group, kind), (version, name) in sorted(chosen.items()):
        kinds[f"{group}/{kind}"] = {"v": version, "t": reducer.ref("#/definitions/" + name)}
    document = {
        "_source": "kubernetes-client/python kubernetes/swagger.json.unprocessed (release-1.36), "
        "reduced by bench/tools/make_k8s_listschema.py",
        "kinds": kinds,
        "types": dict(sorted(reducer.types.items())),
    }
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(document, handle, separators=(",", ":"), sort_keys=False)
        handle.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
