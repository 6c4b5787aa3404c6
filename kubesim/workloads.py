"""Simulated controllers: workloads reach the status a real controller writes (kstatus Current).

A Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, Pod, PersistentVolumeClaim or LoadBalancer
Service that is created, or whose spec (generation) changes, gets its final status written through
the status subresource as manager ``kube-controller-manager`` after ``workload_delay`` seconds
(default 0.2). A Deployment first reports the rollout in progress (``ReplicaSetUpdated``), so an
image bump is seen going InProgress then Current. A LoadBalancer Service gets an ingress IP; a PVC
becomes ``Bound``.

Per-object annotations steer the outcome:

``kubesim.convoy.dev/outcome: ready|fail|stuck``
    ``ready`` (default) reaches Current. ``fail``: a Deployment reports ``Progressing=False`` with
    reason ``ProgressDeadlineExceeded``; a Job reports ``Failed=True`` (``BackoffLimitExceeded``);
    a Pod crash-loops (``CrashLoopBackOff``); other kinds stay not ready. ``stuck``: never becomes
    ready (the rollout stays in progress).
``kubesim.convoy.dev/delay: "<seconds>"``
    Overrides ``workload_delay`` for this object.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kubesim import clock, registry
from kubesim.clusters import Cluster
from kubesim.store import Event, Key

__all__ = ["ANNOTATION_DELAY", "ANNOTATION_OUTCOME", "MANAGER", "Simulator"]

ANNOTATION_OUTCOME = "kubesim.convoy.dev/outcome"
ANNOTATION_DELAY = "kubesim.convoy.dev/delay"
MANAGER = "kube-controller-manager"
Obj = dict[str, Any]


def _cond(kind: str, status: str, reason: str, message: str, when: str, *, update: bool = False) -> Obj:
    cond: Obj = {"type": kind, "status": status}
    if update:
        cond["lastUpdateTime"] = when
    cond.update({"lastTransitionTime": when, "reason": reason, "message": message})
    return cond


def _replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas", 1)
    return int(value) if isinstance(value, int) else 1


def _deployment(obj: Obj, outcome: str, final: bool, when: str) -> Obj:
    meta = obj["metadata"]
    n = _replicas(obj)
    rs = f"{meta['name']}-{abs(hash(str((obj.get('spec') or {}).get('template')))) % 10**10:010d}"[:63]
    status: Obj = {"observedGeneration": meta.get("generation", 1)}
    if final and outcome == "ready":
        status.update({"replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n})
        if n == 0:
            status = {"observedGeneration": status["observedGeneration"]}
        status["conditions"] = [
            _cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", when,
                  update=True),
            _cond("Progressing", "True", "NewReplicaSetAvailable",
                  f'ReplicaSet "{rs}" has successfully progressed.', when, update=True),
        ]
        return status
    status.update({"replicas": n, "updatedReplicas": n, "unavailableReplicas": n})
    if final and outcome == "fail":
        progressing = _cond("Progressing", "False", "ProgressDeadlineExceeded",
                            f'ReplicaSet "{rs}" has timed out progressing.', when, update=True)
    else:
        progressing = _cond("Progressing", "True", "ReplicaSetUpdated",
                            f'ReplicaSet "{rs}" is progressing.', when, update=True)
    status["conditions"] = [
        _cond("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.",
              when, update=True),
        progressing,
    ]
    return status


def _replicaset(obj: Obj, outcome: str, final: bool, when: str) -> Obj:
    n = _replicas(obj)
    ready = n if outcome == "ready" else 0
    status: Obj = {"replicas": n, "fullyLabeledReplicas": n, "observedGeneration": obj["metadata"].get("generation", 1)}
    if ready:
        status.update({"readyReplicas": ready, "availableReplicas": ready})
    return status


def _statefulset(obj: Obj, outcome: str, final: bool, when: str) -> Obj:
    n = _replicas(obj)
    revision = f"{obj['metadata']['name']}-{abs(hash(str((obj.get('spec') or {}).get('template')))) % 10**10}"
    ready = n if outcome == "ready" else 0
    status: Obj = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": n,
                   "currentReplicas": ready, "updatedReplicas": ready, "currentRevision": revision,
                   "updateRevision": revision, "collisionCount": 0, "availableReplicas": ready}
    if ready:
        status["readyReplicas"] = ready
    else:
        status["currentRevision"] = revision + "-old"
    return status


def _daemonset(obj: Obj, outcome: str, final: bool, when: str) -> Obj:
    desired = 3
    ready = desired if outcome == "ready" else 0
    status: Obj = {"currentNumberScheduled": desired, "desiredNumberScheduled": desired, "numberMisscheduled": 0,
                   "numberReady": ready, "observedGeneration": obj["metadata"].get("generation", 1),
                   "updatedNumberScheduled": ready, "numberAvailable": ready}
    if not ready:
        status["numberUnavailable"] = desired
    return status


def _job(obj: Obj, outcome: str, final: bool, when: str) -> Obj:
    status: Obj = {"startTime": when, "active": 1, "ready": 0, "terminating": 0,
                   "uncountedTerminatedPods": {}}
    if outcome == "ready":
        completions = (obj.get("spec") or {}).get("completions", 1) or 1
        status = {"startTime": when, "completionTime": when, "succeeded": completions, "ready": 0,
                  "terminating": 0, "uncountedTerminatedPods": {},
                  "conditions": [_cond("SuccessCriteriaMet", "True", "CompletionsReached",
                                       "Reached expected number of succeeded pods", when),
                                 _cond("Complete", "True", "CompletionsReached",
                                       "Reached expected number of succeeded pods", when)]}
        for cond in status["conditions"]:
            cond["lastProbeTime"] = when
    elif outcome == "fail":
        status = {"startTime": when, "failed": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {},
                  "conditions": [_cond("FailureTarget", "True", "BackoffLimitExceeded",
                                       "Job has reached the specified backoff limit", when),
                                 _cond("Failed", "True", "BackoffLimitExceeded",
                                       "Job has reached the specified backoff limit", when)]}
        for cond in status["conditions"]:
            cond["lastProbeTime"] = when
    return status


def _pvc(obj: Obj, outcome: str, final: bool, when: str) -> Obj:
    if outcome != "ready":
        return {"phase": "Pending"}
    spec = obj.get("spec") or {}
    return {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")}}


def _pod(obj: Obj, outcome: str, final: bool, when: str) -> Obj:
    containers = (obj.get("spec") or {}).get("containers") or []
    ready = outcome == "ready"
    statuses = []
    for c in containers:
        entry: Obj = {"name": c.get("name"), "image": c.get("image"), "imageID": "", "ready": ready,
                      "restartCount": 0 if ready else 5, "started": ready}
        if ready:
            entry["state"] = {"running": {"startedAt": when}}
        else:
            entry["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off restarting failed container"}}
        statuses.append(entry)
    flag = "True" if ready else "False"
    return {
        "phase": "Running", "hostIP": "172.18.0.2", "podIP": "10.244.0.10", "startTime": when, "qosClass": "BestEffort",
        "conditions": [{"type": t, "status": "True" if t == "PodScheduled" else flag, "lastProbeTime": None,
                        "lastTransitionTime": when}
                       for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                 "PodScheduled")],
        "containerStatuses": statuses,
    }


Builder = Callable[[Obj, str, bool, str], Obj]

SIMULATED: dict[Key, Builder] = {
    ("apps", "deployments"): _deployment,
    ("apps", "replicasets"): _replicaset,
    ("apps", "statefulsets"): _statefulset,
    ("apps", "daemonsets"): _daemonset,
    ("batch", "jobs"): _job,
    ("", "persistentvolumeclaims"): _pvc,
    ("", "pods"): _pod,
}
SERVICE_KEY: Key = ("", "services")


class Simulator:
    """Schedules status writes for workloads whose spec changed (see the module docstring)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        # What was last simulated, per object: (uid, generation or spec fingerprint).
        self._seen: dict[tuple[Key, str, str], tuple[str, str]] = {}

    def on_event(self, event: Event) -> None:
        key = event.key
        if key not in SIMULATED and key != SERVICE_KEY:
            return
        meta = event.obj["metadata"]
        where = (key, meta.get("namespace") or "", meta["name"])
        if event.type == "DELETED":
            self._seen.pop(where, None)
            return
        if meta.get("deletionTimestamp"):
            return
        obj = event.obj
        if key == SERVICE_KEY:
            spec = obj.get("spec") or {}
            if (spec.get("type") != "LoadBalancer"
                    or ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")):
                return
            fingerprint = "lb"
        else:
            fingerprint = str(meta.get("generation")) if "generation" in meta else repr(obj.get("spec"))
        stamp = (meta.get("uid", ""), fingerprint + "|" + str((meta.get("annotations") or {}).get(ANNOTATION_OUTCOME)))
        if self._seen.get(where) == stamp:
            return
        self._seen[where] = stamp
        annotations = meta.get("annotations") or {}
        outcome = str(annotations.get(ANNOTATION_OUTCOME, "ready"))
        if outcome not in ("ready", "fail", "stuck"):
            outcome = "ready"
        try:
            delay = float(annotations.get(ANNOTATION_DELAY, self.cluster.options.workload_delay))
        except ValueError:
            delay = self.cluster.options.workload_delay
        if key == ("apps", "deployments"):
            # The controller notices the new generation at once and reports the rollout in progress.
            self.cluster.timers.call_later(0, self._complete, where, stamp, outcome, False)
        if outcome != "stuck" or key == ("apps", "deployments"):
            self.cluster.timers.call_later(delay, self._complete, where, stamp, outcome, outcome != "stuck")

    def _complete(self, where: tuple[Key, str, str], stamp: tuple[str, str], outcome: str, final: bool) -> None:
        if self._seen.get(where) != stamp:
            return  # superseded by a newer spec
        obj = self.cluster.store.get(*where)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        key = where[0]
        rt = next(iter(self.cluster.types_of(*key)), None)
        if rt is None:
            return
        when = clock.now()
        if key == SERVICE_KEY:
            if outcome != "ready":
                return
            status = copy.deepcopy(obj.get("status") or {})
            status["loadBalancer"] = {"ingress": [{"ip": self.cluster.allocate_lb_ip(), "ipMode": "VIP"}]}
        else:
            status = SIMULATED[key](obj, outcome, final, when)
            previous = obj.get("status") or {}
            # Keep lastTransitionTime of conditions whose status did not change, as controllers do.
            old_conds = {c.get("type"): c for c in previous.get("conditions") or ()}
            for cond in status.get("conditions") or ():
                old = old_conds.get(cond["type"])
                if old is not None and old.get("status") == cond["status"]:
                    cond["lastTransitionTime"] = old.get("lastTransitionTime", when)
        registry.write_status(self.cluster, rt, obj, status, manager=MANAGER)
