"""A big cluster (issue 22, item 11): one bundle of 10,000 objects (full; 1,000 small) applied by the spoke.

1. The spoke's engine applies the bundle to a fresh kubesim cluster (kubesim in its own process),
   prunes and saves the inventory, which no longer fits one Secret and is stored in parts: time, and
   the peak RSS this process reached doing it.
2. A real ``convoy spoke run`` enforces the bundle from its in-cluster copy (hub unreachable) under
   drift watch: RSS and CPU sampled over 60 s (full) / 10 s (small).
3. The status report of that many objects as the spoke sends it: bytes on the wire (the hub's limit
   is 4 MiB a message and 20,000 objects a report).

``main(scale) -> dict``; ``python -m bench --scale full --only bigcluster``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import bench_spoke
from protos import bundle as bundles
from protos.objects import ObjectRef
from protos.status import Action, HealthStatus, Phase
from spoke import hubclient, inventory, report
from spoke.cluster import ClusterClient


def _report_bytes(objects: list[dict[str, Any]]) -> int:
    statuses = tuple(
        report.ObjectStatus(ref=ObjectRef.of(o), app="bench", action=Action.UNCHANGED, health=HealthStatus.CURRENT)
        for o in objects)
    return hubclient.status_to_wire(report.Status(phase=Phase.READY, commit="c" * 40, digest="sha256:" + "0" * 64,
                                                  objects=statuses)).ByteSize()


def main(scale: str = "small") -> dict[str, Any]:
    total = 10_000 if scale == "full" else 1_000
    objects = bench_spoke.make_objects(total, namespaces=20)
    bundle = bench_spoke.make_bundle(objects)
    data = bundles.encode(bundle)
    figures: dict[str, Any] = {"objects": len(objects), "bundle_bytes": len(data),
                               "bundle_compressed_bytes": len(bundles.compress(data))}
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        sim, kubeconfig = bench_spoke.start_kubesim(Path(tmp), ["big", "idle"])
        try:
            client = ClusterClient.from_config_dict(yaml.safe_load(kubeconfig.read_text()), context="big")
            client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "convoy-system"}},
                         manager="bench")
            store = inventory.InventoryStore(client, namespace="convoy-system", name="convoy-inventory")
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            first, _inv, actions = bench_spoke.spoke_apply(client, bundle, cluster="big", store=store,
                                                           previous=None, data=data)
            parts = len(client.list("v1", "Secret", namespace="convoy-system",
                                    label_selector=inventory.LABEL_PART).items)
            loaded = store.load()
            client.close()
            if loaded is None or len(loaded.entries) != len(objects):
                raise RuntimeError("the inventory did not read back whole")
            figures.update(first_apply_s=round(first, 1), first_actions=actions, inventory_parts=parts,
                           apply_peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                           rss_before_mib=round(rss_before, 1))
            print(f"spoke first apply of {len(objects)} objects: {first:.1f} s {actions}; inventory in {parts} "
                  f"part(s); peak RSS {figures['apply_peak_rss_mib']} MiB")
            started = time.monotonic()
            idle = bench_spoke.idle_footprint(kubeconfig, "idle", bundle, seconds=60.0 if scale == "full" else 10.0)
            figures.update(idle, idle_total_s=round(time.monotonic() - started, 1))
            print(f"spoke idle under drift watch: RSS {idle['idle_rss_mib']} MiB (peak {idle['idle_rss_peak_mib']}), "
                  f"CPU {idle['idle_cpu_percent_of_core']}% of a core")
        finally:
            sim.terminate()
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()
    figures["report_bytes"] = _report_bytes(objects)
    print(f"status report of {len(objects)} objects: {figures['report_bytes']} bytes")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=["small", "full"], default="small")
    print(json.dumps(main(parser.parse_args().scale), indent=2))
