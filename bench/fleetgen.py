"""Generate a fleet repository: N clusters x M apps, env and region overlays, K per-cluster layers.

Used by the render benchmark (bench_render.py) and the fan-out benchmark (issue 7)::

    spec = FleetSpec(clusters=1000, apps=5, cluster_layers=100)
    fleet = generate(Path("/tmp/fleet"), spec)            # a real Git repository, one commit
    sha = commit_region_change(fleet.root, "eu")        # touches ~1/5 of the clusters
    sha = commit_all_clusters_change(fleet.root)        # touches every cluster

Cluster ``i`` is ``<env>-<region>-<i>`` with labels ``env``, ``region`` and ``shard``;
envs cycle fastest, then regions, so every (env, region) pair is used. Each app
is a kustomize base (ServiceAccount, ConfigMap with ``${cluster_name}``,
Deployment, Service) with one Component per env and per region; the first K
clusters have a per-cluster layer for app 0 under ``clusters/<name>/app-0``.
:func:`write_peer_dirs` writes what a per-cluster kustomize tool would build:
one kustomization per cluster that pulls in every app with its layers.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "FleetSpec",
    "GeneratedFleet",
    "cluster_labels",
    "cluster_names",
    "commit_all_clusters_change",
    "commit_region_change",
    "generate",
    "write_peer_dirs",
]


@dataclasses.dataclass(frozen=True)
class FleetSpec:
    clusters: int = 1000
    apps: int = 5
    cluster_layers: int = 100          #: clusters (the first ones) with a per-cluster layer for app 0
    envs: tuple[str, ...] = ("dev", "staging", "prod")
    regions: tuple[str, ...] = ("eu", "us", "ap", "sa", "af")


@dataclasses.dataclass(frozen=True)
class GeneratedFleet:
    root: Path
    spec: FleetSpec
    clusters: tuple[str, ...]
    head: str | None                   #: commit sha when written as a Git repository


def cluster_labels(spec: FleetSpec, index: int) -> dict[str, str]:
    return {"env": spec.envs[index % len(spec.envs)],
            "region": spec.regions[(index // len(spec.envs)) % len(spec.regions)],
            "shard": str(index % 10)}


def cluster_names(spec: FleetSpec) -> list[str]:
    return [f"{labels['env']}-{labels['region']}-{index:04d}"
            for index, labels in ((i, cluster_labels(spec, i)) for i in range(spec.clusters))]


def _app_files(app: str, spec: FleetSpec) -> dict[str, str]:
    base = f"apps/{app}/base"
    files = {
        f"{base}/kustomization.yaml": (
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "resources: [serviceaccount.yaml, configmap.yaml, deployment.yaml, service.yaml]\n"
            f"labels:\n  - pairs: {{app.kubernetes.io/name: {app}}}\n    includeSelectors: true\n"),
        f"{base}/serviceaccount.yaml": (
            f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {app}\n  namespace: {app}\n"),
        f"{base}/configmap.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}-config\n  namespace: {app}\ndata:\n"
            "  CLUSTER: ${cluster_name}\n  ENV: ${label_env}\n  LOG_LEVEL: info\n  REVISION: '1'\n"),
        f"{base}/deployment.yaml": (
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n  namespace: {app}\n"
            "spec:\n  replicas: 1\n  selector:\n    matchLabels: {}\n  template:\n    spec:\n"
            f"      serviceAccountName: {app}\n      containers:\n        - name: main\n"
            f"          image: registry.example.com/{app}:1.0.0\n"
            "          ports: [{name: http, containerPort: 8080}]\n"
            f"          envFrom: [{{configMapRef: {{name: {app}-config}}}}]\n"
            "          resources: {requests: {cpu: 10m, memory: 32Mi}}\n"),
        f"{base}/service.yaml": (
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {app}\n  namespace: {app}\n"
            "spec:\n  ports: [{name: http, port: 80, targetPort: http}]\n"),
    }
    for replicas, env in enumerate(spec.envs, start=1):
        files[f"apps/{app}/overlays/env/{env}/kustomization.yaml"] = (
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
            f"replicas: [{{name: {app}, count: {min(replicas, 3)}}}]\n"
            f"images: [{{name: registry.example.com/{app}, newTag: '1.0.0-{env}'}}]\n")
    for region in spec.regions:
        files[f"apps/{app}/overlays/region/{region}/kustomization.yaml"] = _region_overlay(app, region, 1)
    return files


def _region_overlay(app: str, region: str, revision: int) -> str:
    return ("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n  - patch: |-\n"
            f"      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: {app}-config\n"
            f"        namespace: {app}\n      data:\n        REGION: {region}\n"
            f"        REGION_REVISION: '{revision}'\n")


def _fleet_yaml(spec: FleetSpec) -> str:
    lines = ["apiVersion: convoy.dev/v1alpha1", "kind: Fleet", "apps:"]
    for index in range(spec.apps):
        app = f"app-{index}"
        lines += [f"  - name: {app}", f"    path: apps/{app}/base", f"    namespace: {app}", "    overlays:"]
        lines += [f"      - {{selector: {{matchLabels: {{env: {env}}}}}, path: apps/{app}/overlays/env/{env}}}"
                  for env in spec.envs]
        lines += [f"      - {{selector: 'region={region}', path: apps/{app}/overlays/region/{region}}}"
                  for region in spec.regions]
        lines.append("    clusterLayer: clusters/{cluster}/{app}")
    return "\n".join(lines) + "\n"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def _commit(root: Path, message: str) -> str:
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=fleetgen", "-c", "user.email=fleetgen@example.com", "commit", "-q",
         "--no-gpg-sign", "-m", message)
    return _git(root, "rev-parse", "HEAD")


def generate(root: Path, spec: FleetSpec = FleetSpec(), *, git: bool = True) -> GeneratedFleet:
    """Write the fleet under ``root`` (created); with ``git`` it is a Git repository with one commit."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {"fleet.yaml": _fleet_yaml(spec)}
    for index in range(spec.apps):
        files.update(_app_files(f"app-{index}", spec))
    names = cluster_names(spec)
    for index, name in enumerate(names):
        labels = cluster_labels(spec, index)
        files[f"clusters/{name}/cluster.yaml"] = (
            "apiVersion: convoy.dev/v1alpha1\nkind: Cluster\n"
            f"labels: {{env: {labels['env']}, region: {labels['region']}, shard: '{labels['shard']}'}}\n"
            f"vars: {{owner: team-{index % 7}}}\n")
        if index < spec.cluster_layers:
            files[f"clusters/{name}/app-0/kustomization.yaml"] = (
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                f"replicas: [{{name: app-0, count: {2 + index % 3}}}]\n")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    head = None
    if git:
        _git(root, "init", "-q", "-b", "main")
        head = _commit(root, f"fleet: {spec.clusters} clusters x {spec.apps} apps")
    return GeneratedFleet(root=root, spec=spec, clusters=tuple(names), head=head)


def commit_region_change(root: Path, region: str, *, app: str = "app-0") -> str:
    """Change one region overlay of one app (about 1/len(regions) of the clusters) and commit."""
    path = root / f"apps/{app}/overlays/region/{region}/kustomization.yaml"
    revision = int(path.read_text().rsplit("REGION_REVISION: '", 1)[1].split("'", 1)[0]) + 1
    path.write_text(_region_overlay(app, region, revision))
    return _commit(root, f"{app}: region {region} revision {revision}")


def commit_all_clusters_change(root: Path, *, app: str = "app-0") -> str:
    """Change one app's base (every cluster's bundle) and commit."""
    path = root / f"apps/{app}/base/configmap.yaml"
    text = path.read_text()
    revision = int(text.rsplit("REVISION: '", 1)[1].split("'", 1)[0]) + 1
    path.write_text(text.replace(f"REVISION: '{revision - 1}'", f"REVISION: '{revision}'"))
    return _commit(root, f"{app}: base revision {revision}")


def write_peer_dirs(fleet: GeneratedFleet, clusters: Sequence[str] | None = None,
                    dest: Path | None = None) -> list[Path]:
    """One kustomization directory per cluster, as a per-cluster kustomize tool would build it.

    Each pulls in every app's base with that cluster's Components (same layers as
    Convoy resolves). Written outside the repository unless ``dest`` says otherwise.
    """
    dest = dest or fleet.root.parent / (fleet.root.name + "-peer")
    spec = fleet.spec
    wanted = set(clusters) if clusters is not None else None
    written: list[Path] = []
    for index, name in enumerate(fleet.clusters):
        if wanted is not None and name not in wanted:
            continue
        labels = cluster_labels(spec, index)
        top = dest / name
        for app_index in range(spec.apps):
            app = f"app-{app_index}"
            components = [f"apps/{app}/overlays/env/{labels['env']}",
                          f"apps/{app}/overlays/region/{labels['region']}"]
            if app_index == 0 and index < spec.cluster_layers:
                components.append(f"clusters/{name}/{app}")
            app_dir = top / app
            app_dir.mkdir(parents=True, exist_ok=True)
            rel = Path("../" * (len(app_dir.relative_to(dest.parent).parts)))
            root_rel = rel / fleet.root.relative_to(dest.parent)
            (app_dir / "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"resources: [{root_rel / 'apps' / app / 'base'}]\n"
                f"components: [{', '.join(str(root_rel / c) for c in components)}]\n")
        (top / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources: [{', '.join(f'app-{i}' for i in range(spec.apps))}]\n")
        written.append(top)
    return written
