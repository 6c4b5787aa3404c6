"""The OpenAPI v3 discovery kubectl reads before it writes (``/openapi/v3`` and one document per group/version).

kubectl's default ``--validate=strict`` asks whether the server validates fields itself: it looks in
the group/version's OpenAPI v3 document for the PATCH operation of the kind (found by its
``x-kubernetes-group-version-kind`` extension) and for a ``fieldValidation`` query parameter. Only
that part of the documents is served: paths with their operations and parameters, no schemas.
kubectl then leaves validation to the server.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from kubesim.resources import ResourceType

if TYPE_CHECKING:
    from kubesim.clusters import Cluster

__all__ = ["group_version_document", "root_document"]

Obj = dict[str, Any]
_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def root_document(cluster: Cluster, prefix: str) -> Obj:
    """``/openapi/v3``: where each group/version's document is (server-relative, cluster prefix included)."""
    paths: Obj = {}
    for group, versions in cluster.group_versions().items():
        for version in versions:
            doc = group_version_document(cluster, group, version)
            if doc is None:
                continue
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
            gv = _gv_path(group, version)
            paths[gv] = {"serverRelativeURL": f"{prefix}/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


def _operation(rt: ResourceType, verb: str, names: list[str]) -> Obj:
    params: list[Obj] = [{"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                         for name in names]
    return {
        "tags": [rt.group or "core"],
        "operationId": f"{verb}{rt.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    }


def group_version_document(cluster: Cluster, group: str, version: str) -> Obj | None:
    types = cluster.discoverable(group, version)
    if not types:
        return None
    base = "/" + _gv_path(group, version)
    paths: Obj = {}
    for rt in types:
        scope = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
        name_params: list[Obj] = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
        if rt.namespaced:
            name_params.append({"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}})
        paths[scope] = {
            "get": _operation(rt, "list", ["labelSelector", "fieldSelector", "limit", "continue", "watch"]),
            "post": _operation(rt, "post", ["dryRun", "fieldManager", "fieldValidation", "pretty"]),
            "parameters": name_params[1:],
        }
        paths[f"{scope}/{{name}}"] = {
            "get": _operation(rt, "get", ["pretty"]),
            "put": _operation(rt, "put", ["dryRun", "fieldManager", "fieldValidation", "pretty"]),
            "patch": _operation(rt, "patch", list(_QUERY)),
            "delete": _operation(rt, "delete", ["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            "parameters": name_params,
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.36.0"}, "paths": paths,
            "components": {}}
