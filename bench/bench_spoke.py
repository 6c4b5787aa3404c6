"""Spoke apply speed against ``kubectl apply --server-side``, and the spoke's idle footprint.

1. A 300-object bundle (10 namespaces; ConfigMaps, Secrets, ServiceAccounts, Roles, RoleBindings,
   Services, Deployments) is applied by the spoke's engine (staged SSA + prune + inventory save, what
   ``reconcile_once`` does) to a fresh kubesim cluster, then re-applied unchanged.
2. ``kubectl apply --server-side`` applies the same objects to another fresh kubesim cluster in the
   same kubesim process, then again unchanged.
3. A real ``convoy spoke run`` process enforces the bundle from its in-cluster copy (hub
   unreachable) under drift watch; its RSS and CPU are sampled over 60 s (full) / 10 s (small).

Prints the figures and the ratios (targets: first apply no slower than kubectl, unchanged re-apply at
least 5x faster; idle under 80 MiB and under 1% of a core). ``main(scale) -> dict``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from protos import bundle as bundles
from spoke import credentials, inventory
from spoke.apply import engine, pruning
from spoke.cluster import ClusterClient

ROOT = Path(__file__).resolve().parent.parent
NAMESPACES = 10


def make_objects(total: int = 300, namespaces: int = NAMESPACES) -> list[dict[str, Any]]:
    """``total`` objects: ``namespaces`` Namespaces, the rest spread over them in mixed kinds."""
    objects: list[dict[str, Any]] = []
    names = [f"bench-{i:02d}" for i in range(namespaces)]
    for ns in names:
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    makers = [
        lambda ns, i: {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cfg-{i}", "namespace": ns},
                       "data": {"app.properties": f"instance={i}\nmode=bench\n", "index": str(i)}},
        lambda ns, i: {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"sec-{i}", "namespace": ns},
                       "type": "Opaque", "stringData": {"password": f"pw-{i}"}},
        lambda ns, i: {"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": f"sa-{i}", "namespace": ns}},
        lambda ns, i: {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                       "metadata": {"name": f"role-{i}", "namespace": ns},
                       "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
        lambda ns, i: {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": f"rb-{i}", "namespace": ns},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"role-{i}"},
                       "subjects": [{"kind": "ServiceAccount", "name": f"sa-{i}", "namespace": ns}]},
        lambda ns, i: {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": ns},
                       "spec": {"selector": {"app": f"app-{i}"},
                                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}},
        lambda ns, i: {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"app-{i}", "namespace": ns},
                       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"app-{i}"}},
                                "template": {"metadata": {"labels": {"app": f"app-{i}"}},
                                             "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                                                                      "ports": [{"containerPort": 8080}]}]}}}},
    ]
    i = 0
    while len(objects) < total:
        ns = names[i % namespaces]
        objects.append(makers[(i // namespaces) % len(makers)](ns, i))
        i += 1
    for obj in objects:
        obj["metadata"].setdefault("labels", {})[bundles.LABEL_APP] = "bench"
    return objects


def make_bundle(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": bundles.API_VERSION, "kind": "Bundle",
            "apps": [{"name": "bench", "namespace": "", "dependsOn": []}], "objects": objects}


def spoke_apply(client: ClusterClient, bundle: dict[str, Any], *, cluster: str,
                store: inventory.InventoryStore, previous: inventory.Inventory | None,
                data: bytes) -> tuple[float, inventory.Inventory, dict[str, int]]:
    """What reconcile_once does after verification: apply, prune, save the inventory."""
    started = time.perf_counter()
    result = engine.apply_bundle(client, bundle, previous=previous, options=engine.EngineOptions(cluster=cluster))
    pruned = pruning.prune_all(client, inventory=list(previous.entries.values()) if previous else [],
                               desired=result.desired, cluster=cluster)
    inv = inventory.Inventory(entries={e.ref: e for e in [*result.inventory, *pruned.retained]},
                              digest=bundles.digest_of(data), commit="bench", bundle_bytes=data)
    store.save(inv)
    elapsed = time.perf_counter() - started
    actions: dict[str, int] = {}
    for entry in result.changeset:
        actions[entry.action] = actions.get(entry.action, 0) + 1
    if result.errors:
        raise RuntimeError(f"spoke apply failed: {result.errors[:3]}")
    return elapsed, inv, actions


def kubectl_apply(kubectl: str, kubeconfig: Path, context: str, manifest: Path, home: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "--context", context, "apply", "--server-side",
                           "--field-manager", "bench", "-f", str(manifest)],
                          capture_output=True, text=True, env={**os.environ, "HOME": str(home)})
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"kubectl apply failed: {done.stderr.strip()[-2000:]}")
    return elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def idle_footprint(kubeconfig: Path, cluster: str, bundle: dict[str, Any], *, seconds: float) -> dict[str, float]:
    """Run ``convoy spoke run`` against the cluster with the hub unreachable; sample RSS and CPU."""
    client = ClusterClient.from_config_dict(yaml.safe_load(kubeconfig.read_text()), context=cluster)
    try:
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        data = bundles.encode(bundle)
        digest = bundles.digest_of(data)
        client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "convoy-system"}},
                     manager="bench")
        credentials.CredentialStore(client, namespace="convoy-system", name="convoy-spoke-state").save(
            credentials.Credentials(cluster=cluster, hub="127.0.0.1:1", credential="bench", signing_key=public))
        store = inventory.InventoryStore(client, namespace="convoy-system", name="convoy-inventory")
        old = store.load()
        store.save(inventory.Inventory(entries=old.entries if old else {}, digest=digest, commit="bench",
                                       signature=bundles.sign(key, digest), bundle_bytes=data))
    finally:
        client.close()
    port = _free_port()
    convoy = shutil.which("convoy", path=str(Path(sys.executable).parent)) or "convoy"
    proc = subprocess.Popen(
        [convoy, "spoke", "run", "--hub", "127.0.0.1:1", "--cluster", cluster, "--kubeconfig", str(kubeconfig),
         "--context", cluster, "--insecure", "--health-port", str(port), "--health-host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the spoke did not become ready")
            time.sleep(0.2)
        time.sleep(2.0)  # let the first listings of the drift watch settle before measuring idle
        cpu0, t0 = _proc_cpu_seconds(proc.pid), time.monotonic()
        peak = 0.0
        while time.monotonic() - t0 < seconds:
            peak = max(peak, _proc_rss_mib(proc.pid))
            time.sleep(0.5)
        cpu = (_proc_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        return {"idle_seconds": seconds, "idle_rss_mib": round(_proc_rss_mib(proc.pid), 1),
                "idle_rss_peak_mib": round(peak, 1), "idle_cpu_percent_of_core": round(100 * cpu, 2)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_kubesim(workdir: Path, names: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
    """kubesim in its own process, so the spoke's client and the server do not share a GIL."""
    kubeconfig = workdir / "kubeconfig"
    proc = subprocess.Popen([sys.executable, "-m", "kubesim", "serve", "--names", ",".join(names),
                             "--clusters", str(len(names)), "--port", "0", "--kubeconfig", str(kubeconfig)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not (kubeconfig.exists() and kubeconfig.stat().st_size):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("kubesim did not start")
        time.sleep(0.1)
    # the kubeconfig is written before the socket is accepting: wait for an answer
    config = yaml.safe_load(kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    while True:
        try:
            with urllib.request.urlopen(server + "/version", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("kubesim is not answering") from None
            time.sleep(0.1)
    return proc, kubeconfig


def main(scale: str = "small") -> dict[str, Any]:
    kubectl = shutil.which("kubectl")
    objects = make_objects()
    bundle = make_bundle(objects)
    data = bundles.encode(bundle)
    figures: dict[str, Any] = {"objects": len(objects), "namespaces": NAMESPACES}
    with tempfile.TemporaryDirectory(prefix="bench-spoke-") as tmp:
        work = Path(tmp)
        sim, kubeconfig = start_kubesim(work, ["spoke", "kubectl", "idle"])
        try:
            config = yaml.safe_load(kubeconfig.read_text())
            client = ClusterClient.from_config_dict(config, context="spoke")
            client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "convoy-system"}},
                         manager="bench")
            store = inventory.InventoryStore(client, namespace="convoy-system", name="convoy-inventory")
            first, inv, actions1 = spoke_apply(client, bundle, cluster="spoke", store=store, previous=None,
                                               data=data)
            again, _, actions2 = spoke_apply(client, bundle, cluster="spoke", store=store, previous=inv, data=data)
            client.close()
            figures.update(spoke_first_apply_s=round(first, 3), spoke_reapply_s=round(again, 3),
                           spoke_first_actions=actions1, spoke_reapply_actions=actions2)
            print(f"spoke   first apply   {first:7.3f} s  {actions1}")
            print(f"spoke   re-apply      {again:7.3f} s  {actions2}")
            if kubectl:
                manifest = work / "objects.yaml"
                manifest.write_text(yaml.safe_dump_all(objects))
                home = work / "home"
                home.mkdir()
                k_first = kubectl_apply(kubectl, kubeconfig, "kubectl", manifest, home)
                k_again = kubectl_apply(kubectl, kubeconfig, "kubectl", manifest, home)
                figures.update(kubectl_first_apply_s=round(k_first, 3), kubectl_reapply_s=round(k_again, 3),
                               first_apply_ratio=round(k_first / first, 2), reapply_ratio=round(k_again / again, 2))
                print(f"kubectl first apply   {k_first:7.3f} s")
                print(f"kubectl re-apply      {k_again:7.3f} s")
                print(f"ratio kubectl/spoke: first {k_first / first:.2f}x (target >= 1), "
                      f"re-apply {k_again / again:.2f}x (target >= 5)")
            else:
                print("kubectl not on PATH: no peer figures")
            idle = idle_footprint(kubeconfig, "idle", bundle, seconds=60.0 if scale == "full" else 10.0)
            figures.update(idle)
            print(f"spoke idle over {idle['idle_seconds']:.0f} s with {len(objects)} objects under drift watch: "
                  f"RSS {idle['idle_rss_mib']} MiB (peak {idle['idle_rss_peak_mib']}; target < 80), "
                  f"CPU {idle['idle_cpu_percent_of_core']}% of a core (target < 1)")
        finally:
            sim.terminate()
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=["small", "full"], default="small")
    print(json.dumps(main(parser.parse_args().scale), indent=2))
