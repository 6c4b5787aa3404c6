"""Server-side printing (``Accept: …;as=Table``): the columns ``kubectl get`` shows for common kinds.

Pure. Each kind's columns are a declared table of ``(name, type, cell function)``; any other kind
gets NAME and AGE, as a custom resource without printer columns does. Ages are rendered
server-side the way kube-apiserver's printers do (``5s``, ``3m``, ``2h``, ``4d``).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["table"]

Obj = Mapping[str, Any]
Cell = Callable[[Obj], Any]


def _age(obj: Obj) -> str:
    stamp = obj["metadata"].get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    seconds = max(0, int(time.time() - calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size * 2 or (unit == "m" and seconds >= 60):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _status(obj: Obj) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _spec(obj: Obj) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _ports(obj: Obj) -> str:
    ports = _spec(obj).get("ports") or []
    text = ",".join(f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
                    for p in ports)
    return text or "<none>"


def _external_ip(obj: Obj) -> str:
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress") or []
    ips = [i.get("ip") or i.get("hostname") for i in ingress]
    if ips:
        return ",".join(str(ip) for ip in ips)
    return "<pending>" if _spec(obj).get("type") == "LoadBalancer" else "<none>"


def _pod_ready(obj: Obj) -> str:
    statuses = _status(obj).get("containerStatuses") or []
    total = len(_spec(obj).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


COLUMNS: dict[tuple[str, str], list[tuple[str, str, Cell]]] = {
    ("apps", "Deployment"): [
        ("Ready", "string", lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}"),
        ("Up-to-date", "integer", lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", lambda o: _status(o).get("availableReplicas", 0)),
    ],
    ("apps", "StatefulSet"): [
        ("Ready", "string", lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}"),
    ],
    ("apps", "DaemonSet"): [
        ("Desired", "integer", lambda o: _status(o).get("desiredNumberScheduled", 0)),
        ("Current", "integer", lambda o: _status(o).get("currentNumberScheduled", 0)),
        ("Ready", "integer", lambda o: _status(o).get("numberReady", 0)),
    ],
    ("batch", "Job"): [
        ("Status", "string", lambda o: next((c["type"] for c in _status(o).get("conditions") or ()
                                              if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"),
                                             "Running")),
        ("Completions", "string", lambda o: f"{_status(o).get('succeeded', 0)}/{_spec(o).get('completions', 1)}"),
    ],
    ("", "Pod"): [
        ("Ready", "string", _pod_ready),
        ("Status", "string", lambda o: _status(o).get("phase", "Pending")),
        ("Restarts", "integer", lambda o: sum(s.get("restartCount", 0)
                                             for s in _status(o).get("containerStatuses") or ())),
    ],
    ("", "Service"): [
        ("Type", "string", lambda o: _spec(o).get("type", "ClusterIP")),
        ("Cluster-IP", "string", lambda o: _spec(o).get("clusterIP") or "<none>"),
        ("External-IP", "string", _external_ip),
        ("Port(s)", "string", _ports),
    ],
    ("", "Namespace"): [("Status", "string", lambda o: _status(o).get("phase", "Active"))],
    ("", "ConfigMap"): [("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))],
    ("", "Secret"): [("Type", "string", lambda o: o.get("type", "Opaque")),
                     ("Data", "integer", lambda o: len(o.get("data") or {}))],
    ("", "PersistentVolumeClaim"): [("Status", "string", lambda o: _status(o).get("phase", "Pending"))],
}


def table(group: str, kind: str, items: Sequence[Obj], meta: Mapping[str, Any]) -> dict[str, Any]:
    columns = COLUMNS.get((group, kind), [])
    definitions = [{"name": "Name", "type": "string", "format": "name", "description": "Name must be unique "
                    "within a namespace.", "priority": 0}]
    definitions += [{"name": name, "type": kind_, "format": "", "description": name, "priority": 0}
                    for name, kind_, _cell in columns]
    definitions.append({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a "
                        "timestamp representing the server time when this object was created.", "priority": 0})
    rows = []
    for obj in items:
        cells = [obj["metadata"]["name"], *(cell(obj) for _name, _kind, cell in columns), _age(obj)]
        partial = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append({"cells": cells, "object": partial})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": dict(meta),
            "columnDefinitions": definitions, "rows": rows}
