"""Render benchmark (issue 3): a generated fleet, rendered cold and after commits, against `kubectl kustomize`.

    python -m bench.bench_render --scale small|full      (or: make bench SCALE=full)

full: 1,000 clusters x 5 apps, env and region overlays, 100 per-cluster layers.
Figures: cold full render (reading clusters/ included), re-render after a commit
touching one region overlay, re-render after a commit touching every cluster, and
alongside, in the same run, `kubectl kustomize` building the same per-cluster
directories one cluster at a time (what a per-cluster kustomize tool does). The
peer is timed on a spread sample of clusters (50 at full scale, 20 at small) and
extrapolated, and the output says so. Peak memory is the process's maximum RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import git  # noqa: E402

from bench import fleetgen  # noqa: E402
from hub.fleet import clusters  # noqa: E402
from hub.render import pipeline  # noqa: E402
from hub.tree import repofs  # noqa: E402

SCALES = {
    "small": (fleetgen.FleetSpec(clusters=100, apps=5, cluster_layers=10), 20),
    "full": (fleetgen.FleetSpec(clusters=1000, apps=5, cluster_layers=100), 50),
}
TARGETS = {"full_render_s": 5.0, "speedup_vs_kubectl": 50.0, "region_rerender_s": 1.0}


def _render(renderer: pipeline.Renderer, repo: git.Repo, sha: str) -> tuple[float, pipeline.FleetRender]:
    started = time.perf_counter()
    fs = repofs.GitTreeFS(repo, sha)
    result = renderer.render_fleet(fs, clusters.all_clusters(clusters.declared_clusters(fs)))
    elapsed = time.perf_counter() - started
    failed = [name for name, r in result.clusters.items() if not r.ok]
    if result.fleet_error is not None or failed:
        raise RuntimeError(f"render failed: {result.fleet_error or result.clusters[failed[0]].errors[0]}")
    return elapsed, result


def _peer(fleet: fleetgen.GeneratedFleet, sample: int, kubectl: str) -> tuple[float, int, int]:
    """Seconds for `kubectl kustomize` over ``sample`` clusters, objects it printed, clusters timed."""
    step = max(1, len(fleet.clusters) // sample)
    chosen = list(fleet.clusters[::step][:sample])
    dirs = fleetgen.write_peer_dirs(fleet, chosen)
    objects = 0
    started = time.perf_counter()
    for directory in dirs:
        out = subprocess.run([kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True)
        objects += out.stdout.count("\n---\n") + 1
    return time.perf_counter() - started, objects, len(dirs)


def main(scale: str) -> dict[str, Any]:
    spec, sample = SCALES[scale]
    kubectl = shutil.which("kubectl")
    with tempfile.TemporaryDirectory(prefix="convoy-bench-render-") as tmp:
        generated = fleetgen.generate(Path(tmp) / "fleet", spec)
        repo = git.Repo(generated.root)
        renderer = pipeline.Renderer()
        cold_s, cold = _render(renderer, repo, generated.head or "HEAD")
        cold_builds = cold.stats.kustomize_renders
        objects = sum(r.object_count for r in cold.clusters.values())

        region_sha = fleetgen.commit_region_change(generated.root, "eu")
        region_s, region = _render(renderer, repo, region_sha)
        all_sha = fleetgen.commit_all_clusters_change(generated.root)
        all_s, every = _render(renderer, repo, all_sha)
        same_s, _ = _render(renderer, repo, all_sha)

        peer: dict[str, Any] = {"available": kubectl is not None}
        if kubectl is not None:
            peer_s, peer_objects, timed = _peer(generated, sample, kubectl)
            per_cluster = peer_s / timed
            peer.update({"clusters_timed": timed, "seconds_timed": round(peer_s, 2),
                         "seconds_per_cluster": round(per_cluster, 4),
                         "objects_per_cluster": peer_objects // timed,
                         "extrapolated": timed < spec.clusters,
                         "full_fleet_seconds": round(per_cluster * spec.clusters, 2)})
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures: dict[str, Any] = {
        "scale": scale, "clusters": spec.clusters, "apps": spec.apps, "cluster_layers": spec.cluster_layers,
        "objects": objects,
        "full_render_s": round(cold_s, 3), "kustomize_builds_cold": cold_builds,
        "region_rerender_s": round(region_s, 3), "region_builds": region.stats.kustomize_renders,
        "region_clusters_rerendered": region.stats.cluster_renders,
        "all_clusters_rerender_s": round(all_s, 3), "all_clusters_builds": every.stats.kustomize_renders,
        "unchanged_rerender_s": round(same_s, 3),
        "peak_rss_mib": round(peak_mib, 1),
        "kubectl_kustomize": peer,
    }
    if kubectl is not None:
        figures["speedup_vs_kubectl"] = round(peer["full_fleet_seconds"] / cold_s, 1)
    _print(figures)
    return figures


def _print(f: dict[str, Any]) -> None:
    print(f"fleet: {f['clusters']} clusters x {f['apps']} apps, {f['cluster_layers']} per-cluster layers, "
          f"{f['objects']} objects in all bundles")
    print(f"cold full render:                 {f['full_render_s']:8.3f} s   ({f['kustomize_builds_cold']} kustomize "
          f"builds; target < {TARGETS['full_render_s']} s at full scale)")
    print(f"re-render, one region overlay:    {f['region_rerender_s']:8.3f} s   ({f['region_builds']} builds, "
          f"{f['region_clusters_rerendered']} clusters re-assembled; target < {TARGETS['region_rerender_s']} s)")
    print(f"re-render, every cluster changed: {f['all_clusters_rerender_s']:8.3f} s   "
          f"({f['all_clusters_builds']} builds)")
    print(f"re-render, nothing changed:       {f['unchanged_rerender_s']:8.3f} s")
    print(f"peak memory (max RSS):            {f['peak_rss_mib']:8.1f} MiB")
    peer = f["kubectl_kustomize"]
    if not peer["available"]:
        print("kubectl not on PATH: no peer figure")
        return
    how = (f"timed on {peer['clusters_timed']} clusters and extrapolated to {f['clusters']}"
           if peer["extrapolated"] else f"all {peer['clusters_timed']} clusters timed")
    print(f"kubectl kustomize, per cluster:   {peer['seconds_per_cluster']:8.3f} s   ({how})")
    print(f"kubectl kustomize, whole fleet:   {peer['full_fleet_seconds']:8.2f} s")
    print(f"speedup vs kubectl kustomize:     {f['speedup_vs_kubectl']:8.1f} x  (target >= "
          f"{TARGETS['speedup_vs_kubectl']:.0f} x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    arguments = parser.parse_args()
    result = main(arguments.scale)
    if arguments.json:
        print(json.dumps(result, indent=2))
