"""`convoy spoke install`: the manifests, the kustomize base in deploy/spoke, and --apply to kubesim.

The apply test reads the objects back with the official client and starts from exactly the settings
they carry: the Deployment's environment, resolved the way the kubelet would (Secret reference,
downward API), must load through the spoke's own settings loader.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from protos.status import DriftPolicy
from spoke import install, settings
from spoke.cli import spoke as spoke_cli

DEPLOY_SPOKE = Path(__file__).resolve().parents[2] / "deploy" / "spoke"


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}


def _env_of(deployment: Mapping[str, Any], secrets: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The container environment as the kubelet would build it."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = secrets[ref["name"]]
            if "data" in secret and ref["key"] in secret["data"]:
                env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
            else:
                env[var["name"]] = secret["stringData"][ref["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[var["name"]] = deployment["metadata"]["namespace"]
        else:
            raise AssertionError(f"unexpected env source {source}")
    return env


def test_manifests_carry_the_settings_the_spoke_reads() -> None:
    manifests = install.install_manifests(
        cluster="east-1", hub="hub.internal:8443", token="abc.def", labels={"region": "eu", "env": "prod"},
        namespace="convoy-system", image="example/spoke:1", insecure=True)
    kinds = _by_kind(manifests)
    assert [m["kind"] for m in manifests][:2] == ["Namespace", "ServiceAccount"]
    env = _env_of(kinds["Deployment"], {install.BOOTSTRAP_SECRET: kinds["Secret"]})
    loaded = settings.load_settings(cli={}, env=env)
    assert (loaded.cluster, loaded.hub, loaded.token) == ("east-1", "hub.internal:8443", "abc.def")
    assert dict(loaded.labels) == {"env": "prod", "region": "eu"}
    assert loaded.namespace == "convoy-system" and loaded.insecure is True
    assert loaded.drift_policy == DriftPolicy.CORRECT
    assert loaded.health_port == settings.DEFAULT_HEALTH_PORT
    # the token travels only through the Secret
    assert "abc.def" not in yaml.safe_dump(kinds["Deployment"])


def test_deployment_is_locked_down_and_probed() -> None:
    kinds = _by_kind(install.install_manifests(cluster="c", hub="h:1", token="a.b", labels={}))
    spec = kinds["Deployment"]["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 1
    assert pod["serviceAccountName"] == install.NAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["command"] == ["convoy", "spoke", "run"]
    assert container["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}
    port = container["ports"][0]
    assert port["containerPort"] == settings.DEFAULT_HEALTH_PORT
    assert container["livenessProbe"]["httpGet"]["port"] == port["name"]
    assert container["readinessProbe"]["httpGet"]["port"] == port["name"]
    rules = kinds["ClusterRole"]["rules"]
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]} in rules
    assert kinds["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": install.NAME, "namespace": settings.DEFAULT_NAMESPACE}]
    assert kinds["Secret"]["stringData"] == {"token": "a.b"}


def test_bad_values_are_refused_naming_the_flag() -> None:
    result = CliRunner().invoke(spoke_cli, ["install", "--cluster", "Not_A_Label", "--hub", "h:1",
                                      "--token", "a.b"])
    assert result.exit_code != 0
    assert "--cluster" in result.output and "Not_A_Label" in result.output
    result = CliRunner().invoke(spoke_cli, ["install", "--cluster", "c", "--hub", "nohostport",
                                      "--token", "a.b"])
    assert result.exit_code != 0 and "--hub" in result.output


def test_cli_prints_the_manifests_as_yaml() -> None:
    result = CliRunner().invoke(spoke_cli, ["install", "--cluster", "west", "--hub", "hub:443",
                                      "--token", "x.y", "--labels", "tier=edge"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    assert docs == install.install_manifests(cluster="west", hub="hub:443", token="x.y", labels={"tier": "edge"})


def test_committed_kustomize_base_is_the_generated_one() -> None:
    expected = install.base_files()
    committed = {p.name: p.read_text(encoding="utf-8") for p in DEPLOY_SPOKE.iterdir() if p.is_file()}
    assert committed == expected, "deploy/spoke is stale: run `python -m spoke.install deploy/spoke`"


def test_kustomize_base_builds_to_the_same_objects(kubectl: str) -> None:
    built = subprocess.run([kubectl, "kustomize", str(DEPLOY_SPOKE)], check=True, capture_output=True,
                           text=True).stdout
    key = lambda m: (m["kind"], m["metadata"]["name"])  # noqa: E731
    got = sorted(yaml.safe_load_all(built), key=key)
    want = sorted(install.install_manifests(**install.PLACEHOLDERS), key=key)
    assert got == want


def test_apply_to_kubesim_then_the_spoke_loads_its_settings_from_what_landed(
        kubesim_server: Any, kube_cluster: str, tmp_path: Path, isolated_home: str) -> None:
    import kubernetes

    kubeconfig = kubesim_server.write_kubeconfig(tmp_path / "kubeconfig", [kube_cluster])
    args = ["install", "--cluster", "east-1", "--hub", "hub.internal:8443", "--token", "abc.def",
            "--labels", "env=prod,region=eu", "--namespace", "convoy-agent", "--apply",
            "--kubeconfig", str(kubeconfig), "--context", kube_cluster]
    result = CliRunner().invoke(spoke_cli, args)
    assert result.exit_code == 0, result.output
    assert "Deployment.apps/convoy-agent/convoy-spoke created" in result.output

    api = kubesim_server.api_client(kube_cluster)
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    deployment = api.sanitize_for_serialization(apps.read_namespaced_deployment(install.NAME, "convoy-agent"))
    secret = api.sanitize_for_serialization(core.read_namespaced_secret(install.BOOTSTRAP_SECRET, "convoy-agent"))
    assert any(m["manager"] == install.FIELD_MANAGER and m["operation"] == "Apply"
               for m in deployment["metadata"]["managedFields"])
    binding = rbac.read_cluster_role_binding(f"{install.NAME}-convoy-agent")
    assert binding.subjects[0].name == install.NAME and binding.subjects[0].namespace == "convoy-agent"
    assert rbac.read_cluster_role(binding.role_ref.name).rules[0].verbs == ["*"]
    assert core.read_namespaced_service_account(install.NAME, "convoy-agent").metadata.name == install.NAME

    env = _env_of(deployment, {install.BOOTSTRAP_SECRET: secret})
    loaded = settings.load_settings(cli={}, env=env)
    assert (loaded.cluster, loaded.hub, loaded.token, loaded.namespace) == (
        "east-1", "hub.internal:8443", "abc.def", "convoy-agent")
    assert dict(loaded.labels) == {"env": "prod", "region": "eu"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["convoy", "spoke", "run"]

    # installing again changes nothing (once the simulated controller has finished writing the
    # Deployment's status, which bumps its resourceVersion on its own)
    deadline = time.monotonic() + 30
    while True:
        current = apps.read_namespaced_deployment(install.NAME, "convoy-agent")
        status = current.status
        if status is not None and status.observed_generation == current.metadata.generation and \
                (status.ready_replicas or 0) == (current.spec.replicas or 0):
            break
        assert time.monotonic() < deadline, f"the Deployment never settled: {status}"
        time.sleep(0.1)
    version = current.metadata.resource_version
    again = CliRunner().invoke(spoke_cli, args)
    assert again.exit_code == 0, again.output
    assert "created" not in again.output
    after = apps.read_namespaced_deployment(install.NAME, "convoy-agent")
    assert after.metadata.resource_version == version
