"""The fleet view's pure parts: a render error in PHASE, the summary, the status header, the exit-code rule, and
what a sync outcome says (issue 12)."""

from __future__ import annotations

import datetime as dt
import io

from rich.console import Console

from hub.commands import formatting
from hub.service import SyncOutcome
from protos import codec
from protos.convoy.v1 import convoy_pb2 as pb

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def summary(name: str, *, render_errors: tuple[str, ...] = ()) -> pb.ClusterSummary:
    cluster = pb.ClusterSummary(name=name, phase=pb.PHASE_READY, render_errors=list(render_errors), online=True)
    cluster.last_seen.CopyFrom(codec.timestamp(NOW))
    return cluster


def rows(*clusters: pb.ClusterSummary) -> list[dict[str, object]]:
    return [formatting.cluster_row(c, now=NOW) for c in clusters]


def test_a_render_error_follows_the_phase_and_is_counted_apart() -> None:
    listed = rows(summary("a"), summary("b", render_errors=("commit abc: app web: x.yaml: bad",)))
    assert [r["phase"] for r in listed] == ["Ready", "Ready (render error)"]
    assert listed[1]["reportedPhase"] == "Ready" and listed[1]["renderErrors"] == ["commit abc: app web: x.yaml: bad"]
    assert listed[1]["errors"] == []
    assert formatting.fleet_summary(listed) == "2 clusters: 1 Ready, 1 Ready (render error)"
    assert not formatting.fleet_ok(listed, pb.ListClustersResponse())
    assert formatting.fleet_ok(listed[:1], pb.ListClustersResponse())


def test_the_header_names_a_refused_commit_on_one_bounded_line() -> None:
    response = pb.ListClustersResponse(fleet_commit="a" * 40, fetch_error="git fetch failed:\n  no route\n")
    response.fleet_commit_seen.CopyFrom(codec.timestamp(NOW - dt.timedelta(minutes=5)))
    response.refused_commit.CopyFrom(pb.RefusedCommit(commit="b" * 40, kind="history rewrite",
                                                      reason="it does not descend " + "x" * 500))
    response.refused_commit.since.CopyFrom(codec.timestamp(NOW - dt.timedelta(seconds=20)))
    first, refused, fetch = formatting.fleet_header(response, now=NOW)
    assert first == f"fleet commit {'a' * 12} (seen 5m ago)"
    assert refused.startswith(f"newer commit {'b' * 12} refused (history rewrite, seen 20s ago): it does not")
    assert len(refused) == formatting.HEADER_WIDTH and refused.endswith("…")
    assert fetch == "fetch failing: git fetch failed: no route"
    assert not formatting.fleet_ok(rows(summary("a")), response)
    document = formatting.refused_document(response)
    assert document is not None and document["kind"] == "history rewrite" and len(document["reason"]) > 500
    assert formatting.refused_document(pb.ListClustersResponse()) is None


def test_a_fleet_wide_render_error_is_not_deployed_rather_than_refused() -> None:
    response = pb.ListClustersResponse(fleet_commit="a" * 40)
    response.refused_commit.CopyFrom(pb.RefusedCommit(commit="c" * 40, kind="render error",
                                                      reason="the fleet cannot be rendered: fleet.yaml: bad"))
    lines = formatting.fleet_header(response, now=NOW)
    assert lines[1].startswith(f"newer commit {'c' * 12} not deployed (render error, seen never)")


def test_a_sync_outcome_says_where_the_commit_leaves_the_clusters() -> None:
    outcome = SyncOutcome(commit="d" * 40, desired=("c1", "c2", "c3", "c4", "c5", "c6", "c7"), held=("h1",),
                          pinned=("p1",), render_errors={"bad": ("cluster bad: app web: x.yaml: broken",)},
                          unchanged=2)
    assert outcome.message == (
        f"commit {'d' * 12}: 7 clusters desire it now (c1, c2, c3, c4, c5 and 2 more), 1 held by the rollout "
        "(h1), 1 pinned to another bundle (p1), 1 refused by render errors (bad), keeping their last good bundle, "
        "2 unchanged")
    assert outcome.report.splitlines()[1] == "  cluster bad: app web: x.yaml: broken"
    assert not outcome.failed
    assert SyncOutcome(commit="d" * 40, unchanged=3, again=True).message == (
        f"commit {'d' * 12} (already deployed): no cluster changed, 3 unchanged")
    assert SyncOutcome(commit="d" * 40, desired=("c1",)).message == f"commit {'d' * 12}: 1 cluster desires it now (c1)"
    assert SyncOutcome(error="fetch failed: nope").failed
    assert SyncOutcome(commit="d" * 40, refused="unsigned").failed


def _printed(table: object, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def _wide_fleet() -> list[dict[str, object]]:
    clusters = []
    for i in range(3):
        cluster = summary(f"production-eu-west-{i}", render_errors=("x.yaml: bad",) if i == 1 else ())
        cluster.labels.update({"env": "production", "region": "europe-west-1"})
        cluster.desired_commit, cluster.desired_digest = "a" * 40, "sha256:" + "b" * 64
        cluster.applied_digest = "sha256:" + "c" * 64
        cluster.wave, cluster.rollout_state = "canary", "baking"
        clusters.append(cluster)
    return rows(*clusters)


def test_the_status_table_drops_low_value_columns_rather_than_cut_the_phase() -> None:
    lines = _printed(formatting.status_table(_wide_fleet(), now=NOW, width=80), 80)
    assert all(len(line) <= 80 for line in lines), lines
    assert "…" not in "".join(lines)
    header = lines[0].split()
    assert header[:2] == ["CLUSTER", "PHASE"] and "READY" in header
    assert "REGION" not in header  # dropped first, before anything an operator acts on
    assert any("Ready (render error)" in line for line in lines)
    # With room, every default column shows.
    assert _printed(formatting.status_table(_wide_fleet(), now=NOW, width=300), 300)[0].split() == [
        "CLUSTER", "PHASE", "READY", "DRIFT", "APPLIED", "DESIRED", "WAVE", "LAST", "SEEN", "ENV", "REGION"]


def test_wide_adds_the_labels_and_the_first_error() -> None:
    lines = _printed(formatting.status_table(_wide_fleet(), now=NOW, wide=True), 400)
    assert lines[0].split()[-2:] == ["LABELS", "MESSAGE"]
    assert "env=production,region=europe-west-1" in lines[2] and "x.yaml: bad" in lines[2]


def test_the_summary_counts_phases_and_says_1_cluster() -> None:
    listed = _wide_fleet()
    assert formatting.fleet_counts(listed) == {"total": 3, "phases": {"Ready": 2, "Ready (render error)": 1}}
    assert formatting.fleet_summary(listed[:1]) == "1 cluster: 1 Ready"
    assert formatting.fleet_summary([]) == "0 clusters: none registered"
    assert formatting.plural(1, "use") == "1 use" and formatting.plural(0, "use") == "0 uses"


def test_drifted_clusters_get_an_adopt_hint_each_and_the_rest_are_counted() -> None:
    drifted = []
    for i in range(7):
        cluster = summary(f"c{i}")
        cluster.drift_count = 1 if i != 3 else 0
        drifted.append(cluster)
    hints = formatting.adopt_hints(rows(*drifted))
    assert hints == [f"adopt into Git: convoy drift adopt c{i}" for i in (0, 1, 2, 4, 5)] + [
        "... and 1 more drifted cluster"]
    assert formatting.adopt_hints(rows(summary("quiet"))) == []
