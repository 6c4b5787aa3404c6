"""Discovery documents: ``/version``, legacy ``/api``, ``/apis``, ``/apis/{g}``, ``/api/v1``,
``/apis/{g}/{v}``, and aggregated discovery (``apidiscovery.k8s.io/v2``) for kubectl and client-go.

Pure: built from a cluster's resource table (built-ins plus its Established CRDs).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from kubesim.resources import ResourceType

if TYPE_CHECKING:
    from kubesim.clusters import Cluster

__all__ = ["AGGREGATED_CONTENT_TYPE", "DEFAULT_KUBE_VERSION", "api_group", "api_group_list", "api_versions",
           "resource_list", "version_info", "wants_aggregated"]

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
Obj = dict[str, Any]


#: The Kubernetes minor version kubesim reports when no kubectl is found and none is asked for.
DEFAULT_KUBE_VERSION = "1.36"


def version_info(kube_version: str = DEFAULT_KUBE_VERSION) -> Obj:
    """``/version`` for ``kube_version`` (``1.32``): kubectl warns when it is more than one minor away."""
    major, minor = kube_version.split(".")[:2]
    return {
        "major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
        "minCompatibilityMajor": major, "minCompatibilityMinor": str(max(0, int(minor) - 1)),
        "gitVersion": f"v{major}.{minor}.0-kubesim", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2026-10-01T00:00:00Z", "goVersion": "go1.25.0",
        "compiler": "gc", "platform": "linux/amd64",
    }


def wants_aggregated(accept: str) -> bool:
    """True when the client asks for aggregated discovery first (client-go's Accept header)."""
    for part in accept.split(","):
        if "as=APIGroupDiscoveryList" in part and "v=v2" in part and "g=apidiscovery.k8s.io" in part:
            return True
        if part.strip().startswith("application/json") and "as=" not in part:
            return False
    return False


def api_versions(host: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}


def _gv(group: str, version: str) -> Obj:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_group(group: str, versions: list[str]) -> Obj:
    entries = [_gv(group, v) for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries,
            "preferredVersion": entries[0]}


def _ordered_versions(versions: list[str]) -> list[str]:
    # Preferred first: GA over beta over alpha, newer first (the Kubernetes version priority).
    def priority(v: str) -> tuple[int, int, int]:
        import re

        m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
        if m is None:
            return (3, 0, 0)
        stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
        return (stage, -int(m.group(1)), -int(m.group(3) or 0))

    return sorted(versions, key=priority)


def api_group_list(cluster: Cluster) -> Obj:
    groups = [api_group(g, _ordered_versions(vs)) for g, vs in cluster.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group_versions(cluster: Cluster, group: str) -> list[str]:
    return _ordered_versions(cluster.group_versions().get(group, []))


def _entry(rt: ResourceType) -> Obj:
    entry: Obj = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                  "verbs": list(rt.verbs)}
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = rt.storage_version_hash
    return entry


def _verbs(cluster: Cluster, rt: ResourceType) -> list[str]:
    if rt.custom and _crd_terminating(cluster, rt):
        return ["delete", "deletecollection", "get", "list", "watch"]
    return list(rt.verbs)


def _crd_terminating(cluster: Cluster, rt: ResourceType) -> bool:
    crd = cluster.store.get(("apiextensions.k8s.io", "customresourcedefinitions"), "", f"{rt.plural}.{rt.group}")
    return crd is not None and bool(crd["metadata"].get("deletionTimestamp"))


def resource_list(cluster: Cluster, group: str, version: str) -> Obj | None:
    types = cluster.discoverable(group, version)
    if not types:
        return None
    resources: list[Obj] = []
    for rt in types:
        entry = _entry(rt)
        entry["verbs"] = _verbs(cluster, rt)
        resources.append(entry)
        if rt.status:
            resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                              "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        if rt.scale:
            resources.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": rt.namespaced,
                              "group": "autoscaling", "version": "v1", "kind": "Scale",
                              "verbs": ["get", "patch", "update"]})
        if rt.key == ("", "namespaces"):
            resources.append({"name": "namespaces/finalize", "singularName": "", "namespaced": False,
                              "kind": "Namespace", "verbs": ["update"]})
    body: Obj = {"kind": "APIResourceList", "groupVersion": f"{group}/{version}" if group else version,
                 "resources": resources}
    if group:
        body["apiVersion"] = "v1"
    return body


def _aggregated_group(cluster: Cluster, group: str, versions: list[str]) -> Obj:
    out_versions = []
    for version in versions:
        resources = []
        for rt in cluster.discoverable(group, version):
            res: Obj = {
                "resource": rt.plural,
                "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "scope": "Namespaced" if rt.namespaced else "Cluster",
                "singularResource": rt.singular,
                "verbs": _verbs(cluster, rt),
            }
            if rt.short_names:
                res["shortNames"] = list(rt.short_names)
            if rt.categories:
                res["categories"] = list(rt.categories)
            subs = []
            if rt.status:
                subs.append({"subresource": "status",
                             "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                             "verbs": ["get", "patch", "update"]})
            if rt.scale:
                subs.append({"subresource": "scale",
                             "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                             "verbs": ["get", "patch", "update"]})
            if subs:
                res["subresources"] = subs
            resources.append(res)
        if resources:
            out_versions.append({"version": version, "resources": resources, "freshness": "Current"})
    return {"metadata": {"name": group, "creationTimestamp": None}, "versions": out_versions}


def aggregated(cluster: Cluster, *, legacy: bool) -> Obj:
    items = []
    for group, versions in cluster.group_versions().items():
        if (group == "") != legacy:
            continue
        items.append(_aggregated_group(cluster, group, _ordered_versions(versions)))
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": items}


def etag(body: Obj) -> str:
    return '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32].upper() + '"'
