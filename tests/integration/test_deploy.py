"""deploy/: the hub's kustomize base applies to a cluster, its settings are the hub's, the images are sound.

No container engine runs here, so the Dockerfiles are checked for what would break a build (a COPY of a
missing path, the wrong extra) and the manifests are applied to kubesim with `kubectl apply -k`.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as kube

from hub import settings
from hub.render import kustomize
from hub.tree import repofs

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def rendered(path: str) -> list[dict[str, Any]]:
    return kustomize.build(repofs.DirectoryFS(ROOT), path).objects


@pytest.mark.parametrize("image", ["hub", "spoke"])
def test_dockerfile_copies_only_existing_paths_and_installs_the_right_extra(image: str) -> None:
    text = (DEPLOY / "images" / f"Dockerfile.{image}").read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            sources = line.split()[1:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile.{image} copies missing {source}"
    extras = set(re.findall(r'convoy\[(\w+)\]', text)) | set(re.findall(r'"\.\[(\w+)\]"', text))
    assert extras == {image}, f"Dockerfile.{image} installs extras {extras}"
    assert re.search(r"^USER 10001", text, re.M), "runs as non-root"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert image in declared
    if image == "spoke":
        spoke_deps = " ".join(declared["spoke"]).lower()
        for heavy in ("sqlmodel", "gitpython", "alembic", "sqlalchemy"):
            assert heavy not in spoke_deps


def test_hub_configmap_holds_only_real_hub_settings() -> None:
    objects = rendered("deploy/hub")
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    loaded = settings.load_settings(cli_values={}, env=configmap["data"], config_file=None)
    assert loaded.grpc_listen == "0.0.0.0:7443" and str(loaded.data_dir) == "/var/lib/convoy"
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    env_names = {e["name"] for e in container["env"]}
    assert env_names <= {f"CONVOY_HUB_{f.upper()}" for f in settings.HubSettings.__dataclass_fields__}
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "NetworkPolicy", "Namespace"} <= kinds


def test_the_ha_overlay_runs_three_replicas_on_postgresql_with_one_identity_and_a_disruption_budget() -> None:
    objects = rendered("deploy/hub-ha")
    kinds = {o["kind"] for o in objects}
    assert "PersistentVolumeClaim" not in kinds  # no shared volume: PostgreSQL holds the state
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["CONVOY_HUB_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["optional"] is False
    assert env["CONVOY_HUB_IDENTITY_DIR"]["value"] == "/etc/convoy/identity"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["identity"]["secret"]["secretName"] == "convoy-hub-identity"
    assert "persistentVolumeClaim" not in volumes["data"]
    pdb = next(o for o in objects if o["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_native_build_matches_kubectl_kustomize(kubectl: str) -> None:
    for base in ("deploy/hub", "deploy/hub-ha", "deploy/spoke"):
        oracle = list(yaml.safe_load_all(subprocess.run([kubectl, "kustomize", str(ROOT / base)], check=True,
                                                        capture_output=True, text=True).stdout))
        assert rendered(base) == oracle, base


def test_hub_manifests_apply_to_a_cluster(kubectl: str, kubesim_server: Any, kube_cluster: str,
                                          tmp_path: Path) -> None:
    kubeconfig = kubesim_server.write_kubeconfig(tmp_path / "kubeconfig", [kube_cluster])
    result = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "--context", kube_cluster, "apply",
                             "--server-side", "-k", str(DEPLOY / "hub")], capture_output=True, text=True,
                            check=False, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    api = kubesim_server.api_client(kube_cluster)
    deployment = kube.AppsV1Api(api).read_namespaced_deployment("convoy-hub", "convoy-system")
    assert deployment.spec.template.spec.containers[0].ports[0].container_port == 7443
    service = kube.CoreV1Api(api).read_namespaced_service("convoy-hub", "convoy-system")
    assert {p.port for p in service.spec.ports} == {7443, 7080, 7444}
    assert kube.NetworkingV1Api(api).read_namespaced_network_policy("convoy-hub", "convoy-system")
    pvc = kube.CoreV1Api(api).read_namespaced_persistent_volume_claim("convoy-hub-data", "convoy-system")
    assert pvc.spec.resources.requests["storage"] == "2Gi"
