"""`convoy sandbox up --clusters N` with fewer clusters than the sample declares still runs the prod rollout's
canary wave, and declares only the clusters it runs (a declared cluster that never registers stops its wave)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hub import localfleet
from hub.fleet import model
from hub.rollout import planning

SAMPLE = localfleet.sample_fleet_path()


def _canaries() -> set[str]:
    return {c.name for c in localfleet.declared_sample_clusters(SAMPLE) if c.labels.get("canary") == "true"}


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_fewer_clusters_than_declared_run_the_canary_and_declare_only_what_runs(tmp_path: Path, count: int) -> None:
    assert _canaries(), "the sample fleet declares a canary"
    members = localfleet.sandbox_members(SAMPLE, count)
    names = {c.name for c in members}
    assert len(members) == count and _canaries() <= names
    fleet = localfleet.LocalFleet(workdir=tmp_path, clusters=members, fleet_source=SAMPLE)
    fleet.init_repo(declare_only_members=True)
    declared = {c.name for c in localfleet.declared_sample_clusters(fleet.repo_dir)}
    assert declared == names
    # The prod bump's rollout: every wave it forms has a cluster that runs (none stops on an absent one).
    fleet_doc = model.parse_fleet(yaml.safe_load((fleet.repo_dir / "fleet.yaml").read_text()))
    assert fleet_doc.rollout is not None
    labels = {c.name: c.labels for c in members}
    prod = [c.name for c in members if c.labels.get("env") == "prod"]
    waves = planning.assign_waves(prod, [(planning.WavePolicy(name=w.name), lambda n, w=w: w.selector.matches(
        labels[n])) for w in fleet_doc.rollout.waves])
    assert waves and all(set(w.clusters) <= names for w in waves)
    assert waves[0].policy.name == "canary", [w.policy.name for w in waves]


def test_as_many_clusters_as_declared_or_more_keeps_every_declaration(tmp_path: Path) -> None:
    members = localfleet.sandbox_members(SAMPLE, 7)
    assert [c.name for c in members][:5] == sorted(c.name for c in localfleet.declared_sample_clusters(SAMPLE))
    fleet = localfleet.LocalFleet(workdir=tmp_path, clusters=members, fleet_source=SAMPLE)
    fleet.init_repo(declare_only_members=True)
    assert len(localfleet.declared_sample_clusters(fleet.repo_dir)) == 5
