"""A running sandbox: `kubectl auth can-i --list` as the spoke's ServiceAccount shows exactly the install's rules.

One cluster of the sample fleet, started as `convoy sandbox up` starts it (kubesim, hub, `convoy spoke
install --apply`, `convoy spoke run` on the ServiceAccount's token); kubesim's SelfSubjectRulesReview
answers kubectl, so what kubectl lists is what the API server would let the spoke do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as kube

from hub import localfleet
from kubesim import wiring
from protos.convoy.v1 import convoy_pb2 as pb
from spoke import install, settings

CLUSTER = "dev-eu-1"
SA = f"system:serviceaccount:{settings.DEFAULT_NAMESPACE}:{install.NAME}"
_ROW = re.compile(r"(\S*)\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s*")

Row = tuple[str, str, str, frozenset[str]]   #: (resource.group, non-resource URL, resource names, verbs)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localfleet.LocalFleet]:
    base = tmp_path_factory.mktemp("sandbox-rbac")
    source = localfleet.sample_fleet_path()
    clusters = [c for c in localfleet.sandbox_clusters(source, 5) if c.name == CLUSTER]
    local = localfleet.LocalFleet(workdir=base / "fleet", clusters=clusters, fleet_source=source,
                                  poll_interval=1.0, heartbeat_seconds=1.0, spoke_heartbeat=2.0,
                                  health_timeout=20.0, workload_delay=0.2)
    try:
        local.start()
        local.wait_all_ready(timeout=120)
        yield local
    finally:
        local.stop()


def _rows(rules: Iterable[Mapping[str, Any]]) -> set[Row]:
    """Rules broken down as kubectl prints them: one row per resource (or URL), its verbs merged."""
    merged: dict[tuple[str, str, str], set[str]] = {}
    for rule in rules:
        names = " ".join(rule.get("resourceNames") or [])
        for url in rule.get("nonResourceURLs") or []:
            merged.setdefault(("", url, ""), set()).update(rule["verbs"])
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                key = f"{resource}.{group}" if group else resource
                merged.setdefault((key, "", names), set()).update(rule["verbs"])
    return {(*key, frozenset(verbs)) for key, verbs in merged.items()}


def _install_rules() -> list[dict[str, Any]]:
    """The rules `convoy spoke install` binds to the spoke in its namespace (the sandbox's install is the default)."""
    manifests = install.install_manifests(cluster=CLUSTER, hub="hub:443", token="t", labels={})
    roles = {(m["kind"], m["metadata"]["name"]): m for m in manifests if m["kind"] in ("ClusterRole", "Role")}
    rules: list[dict[str, Any]] = []
    for binding in (m for m in manifests if m["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        if binding["metadata"].get("namespace", settings.DEFAULT_NAMESPACE) != settings.DEFAULT_NAMESPACE:
            continue
        assert {"kind": "ServiceAccount", "name": install.NAME, "namespace": settings.DEFAULT_NAMESPACE} \
            in binding["subjects"]
        rules.extend(roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]["rules"])
    return rules


def _authenticated_rules() -> list[dict[str, Any]]:
    """What the bootstrap policy grants every authenticated user (the spoke included)."""
    bound = {body["roleRef"]["name"] for kind, body in wiring.BOOTSTRAP_RBAC if kind == "clusterrolebindings"
             and {"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}
             in body["subjects"]}
    return [rule for kind, body in wiring.BOOTSTRAP_RBAC
            if kind == "clusterroles" and body["metadata"]["name"] in bound for rule in body["rules"]]


def _can_i(fleet: localfleet.LocalFleet, namespace: str, home: Path) -> set[Row]:
    """`kubectl auth can-i --list -n NAMESPACE --as` the spoke, parsed into rows."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is installed on the build machines (the oracle)"
    listing = subprocess.run(
        [kubectl, "--kubeconfig", str(fleet.kubeconfig), "--context", CLUSTER, "auth", "can-i", "--list",
         "-n", namespace, "--as", SA],
        capture_output=True, text=True, timeout=60, check=False, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    shown: set[Row] = set()
    for line in lines[1:]:
        match = _ROW.fullmatch(line)
        assert match, f"unexpected can-i row {line!r}"
        resource, urls, names, verbs = match.groups()
        shown |= {(resource, url, names, frozenset(verbs.split())) for url in urls.split() or [""]}
    return shown


def _convoy(fleet: localfleet.LocalFleet, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=120,
                            input=stdin, check=False, env={**os.environ, "CONVOY_CONFIG": str(fleet.cli_config),
                                                           "CONVOY_SPOKE_TOKEN": fleet.join_token})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_can_i_list_as_the_spoke_is_exactly_the_install(fleet: localfleet.LocalFleet, tmp_path: Path) -> None:
    shown = _can_i(fleet, settings.DEFAULT_NAMESPACE, tmp_path)
    assert shown == _rows(_install_rules() + _authenticated_rules())


def test_derived_install_from_the_hub_narrows_the_running_spoke(fleet: localfleet.LocalFleet,
                                                               tmp_path: Path) -> None:
    # Runs after the test above: it replaces the sandbox's install with the derived one, in place.
    bundle = _convoy(fleet, "cluster", "bundle", CLUSTER)
    printed = _convoy(fleet, "spoke", "install", "--cluster", CLUSTER, "--hub", fleet.hub_address,
                      "--rbac", "derived", "--bundle", "-", stdin=bundle)
    manifests = [m for m in yaml.safe_load_all(printed) if m]
    cluster_role = next(m for m in manifests if m["kind"] == "ClusterRole")
    shop_role = next(m for m in manifests if m["kind"] == "Role" and m["metadata"]["namespace"] == "shop")
    assert not [r for r in cluster_role["rules"] + shop_role["rules"] if "*" in r["verbs"]]
    _convoy(fleet, "spoke", "install", "--cluster", CLUSTER, "--hub", fleet.hub_address, "--rbac", "derived",
            "--bundle", "-", "--apply", "--kubeconfig", str(fleet.kubeconfig), "--context", CLUSTER,
            *(["--insecure"] if not fleet.tls else []), stdin=bundle)
    assert _can_i(fleet, "shop", tmp_path) == _rows(cluster_role["rules"] + shop_role["rules"]
                                                    + _authenticated_rules())
    # The spoke, on the narrowed rules, still corrects drift in shop (get, watch, patch on deployments).
    apps = kube.AppsV1Api(fleet.api_client(CLUSTER))
    desired = int(apps.read_namespaced_deployment("web", "shop").spec.replicas)
    apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": desired + 3}}, field_manager="someone")
    localfleet.wait_until(lambda: int(apps.read_namespaced_deployment("web", "shop").spec.replicas) == desired,
                          timeout=30, what="the spoke to correct the drift on its derived rules")
    # Scaling back is a rollout of its own: the cluster reports Progressing until the replicas are ready.
    localfleet.wait_until(lambda: fleet.statuses()[CLUSTER].phase == pb.PHASE_READY, timeout=30,
                          what=f"{CLUSTER} to report Ready on its derived rules")
