"""PR-check benchmark (issue 21): `convoy preview --format markdown` of a generated fleet, against `kubectl kustomize`.

    python -m bench.bench_preview --scale small|full      (or: python -m bench --only preview)

full: the render benchmark's fleet (1,000 clusters x 5 apps, env and region overlays, 100 per-cluster
layers). Two pull requests are previewed, each by the real command in a fresh process (interpreter start,
imports, both renders, the diff and the Markdown: what a CI job waits for): one that changes a region
overlay (about a fifth of the clusters) and one that changes an app's base (every cluster). The target is
under 5 s at full scale. The peer is `kubectl kustomize` building every cluster's directory at both
revisions, one cluster at a time (a per-cluster tool needs both builds before it can diff); it is timed on
a spread sample of clusters and extrapolated, and the output says so. The peer's figure leaves out the diff
itself, so it flatters the peer.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from bench import fleetgen  # noqa: E402

SCALES = {
    "small": (fleetgen.FleetSpec(clusters=100, apps=5, cluster_layers=10), 10),
    "full": (fleetgen.FleetSpec(clusters=1000, apps=5, cluster_layers=100), 25),
}
TARGET_S = 5.0


def _preview(root: Path, base: str, head: str) -> tuple[float, float, str]:
    """Wall and CPU seconds of `convoy preview --format markdown` in a new process, and what it printed.

    The CPU time (user + system of the child) is the steadier figure on a shared machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "hub", "preview", "--repo", str(root), "--base", base, "--head",
                          head, "--format", "markdown"], check=True, capture_output=True, text=True,
                         cwd=HERE.parent)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def _peer(fleet: fleetgen.GeneratedFleet, base: str, head: str, sample: int, kubectl: str,
          tmp: Path) -> tuple[float, int]:
    """Seconds for `kubectl kustomize` over ``sample`` clusters at both revisions; clusters timed."""
    step = max(1, len(fleet.clusters) // sample)
    chosen = list(fleet.clusters[::step][:sample])
    total = 0.0
    for label, sha in (("base", base), ("head", head)):
        root = tmp / f"peer-{label}" / "fleet"
        subprocess.run(["git", "-C", str(fleet.root), "worktree", "add", "-q", "--detach", str(root), sha],
                       check=True, capture_output=True)
        dirs = fleetgen.write_peer_dirs(dataclasses.replace(fleet, root=root), chosen)
        started = time.perf_counter()
        for directory in dirs:
            subprocess.run([kubectl, "kustomize", str(directory)], check=True, capture_output=True)
        total += time.perf_counter() - started
    return total, len(chosen)


def _summary(markdown: str) -> str:
    return next((line for line in markdown.splitlines() if line.startswith("**")), "?")


def main(scale: str) -> dict[str, Any]:
    spec, sample = SCALES[scale]
    kubectl = shutil.which("kubectl")
    with tempfile.TemporaryDirectory(prefix="convoy-bench-preview-") as tmp:
        generated = fleetgen.generate(Path(tmp) / "fleet", spec)
        base = generated.head or "HEAD"
        region_head = fleetgen.commit_region_change(generated.root, "eu")
        region_s, region_cpu, region_md = _preview(generated.root, base, region_head)
        all_head = fleetgen.commit_all_clusters_change(generated.root)
        all_s, all_cpu, all_md = _preview(generated.root, region_head, all_head)
        peer: dict[str, Any] = {"available": kubectl is not None}
        if kubectl is not None:
            peer_s, timed = _peer(generated, region_head, all_head, sample, kubectl, Path(tmp))
            per_cluster = peer_s / timed
            peer.update({"clusters_timed": timed, "seconds_timed": round(peer_s, 2),
                         "seconds_per_cluster_both_revisions": round(per_cluster, 4),
                         "extrapolated": timed < spec.clusters,
                         "full_fleet_seconds": round(per_cluster * spec.clusters, 2)})
    figures: dict[str, Any] = {
        "scale": scale, "clusters": spec.clusters, "apps": spec.apps, "cluster_layers": spec.cluster_layers,
        "region_change_preview_s": round(region_s, 3), "region_change_preview_cpu_s": round(region_cpu, 3),
        "region_change_summary": _summary(region_md),
        "region_change_markdown_chars": len(region_md),
        "every_cluster_preview_s": round(all_s, 3), "every_cluster_preview_cpu_s": round(all_cpu, 3),
        "every_cluster_summary": _summary(all_md),
        "every_cluster_markdown_chars": len(all_md),
        "kubectl_kustomize": peer,
    }
    if kubectl is not None:
        figures["speedup_vs_kubectl"] = round(peer["full_fleet_seconds"] / all_s, 1)
    _print(figures)
    return figures


def _print(f: dict[str, Any]) -> None:
    print(f"fleet: {f['clusters']} clusters x {f['apps']} apps, {f['cluster_layers']} per-cluster layers")
    print(f"preview, one region overlay changed: {f['region_change_preview_s']:8.3f} s   "
          f"(CPU {f['region_change_preview_cpu_s']:.3f} s; {f['region_change_summary']};\n    "
          f"{f['region_change_markdown_chars']} chars; target < {TARGET_S} s "
          "at full scale)")
    print(f"preview, every cluster changed:      {f['every_cluster_preview_s']:8.3f} s   "
          f"(CPU {f['every_cluster_preview_cpu_s']:.3f} s; {f['every_cluster_summary']};\n    "
          f"{f['every_cluster_markdown_chars']} chars)")
    peer = f["kubectl_kustomize"]
    if not peer["available"]:
        print("kubectl not on PATH: no peer figure")
        return
    how = (f"timed on {peer['clusters_timed']} clusters and extrapolated to {f['clusters']}"
           if peer["extrapolated"] else f"all {peer['clusters_timed']} clusters timed")
    print(f"kubectl kustomize, both revisions:   {peer['seconds_per_cluster_both_revisions']:8.3f} s per cluster "
          f"({how})")
    print(f"kubectl kustomize, whole fleet:      {peer['full_fleet_seconds']:8.2f} s   (no diff included)")
    print(f"speedup vs kubectl kustomize:        {f['speedup_vs_kubectl']:8.1f} x  (every-cluster preview)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    arguments = parser.parse_args()
    result = main(arguments.scale)
    if arguments.json:
        print(json.dumps(result, indent=2))
