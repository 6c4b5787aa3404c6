"""Pure formatting of admin responses: rows, tables and documents. Printing happens at the edge."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich import cells as cells_
from rich.table import Table
from rich.text import Text

from protos import codec
from protos.convoy.v1 import convoy_pb2 as pb

__all__ = [
    "HEADER_WIDTH",
    "KEY_LABELS",
    "OFFLINE",
    "SKEW_SHOWN",
    "STATUS_COLUMNS",
    "Column",
    "Condition",
    "adopt_hint",
    "adopt_hints",
    "ago",
    "clock_skew",
    "cluster_row",
    "describe_document",
    "drift_lines",
    "event_row",
    "excerpt",
    "fleet_counts",
    "fleet_header",
    "fleet_ok",
    "fleet_summary",
    "history_table",
    "plural",
    "refused_document",
    "rfc3339",
    "skew_note",
    "status_table",
]

OFFLINE = "Offline"
#: Labels worth a column: the ones fleet overlays usually select on.
KEY_LABELS = ("env", "region")
_PHASE_STYLE = {"Ready": "green", "Progressing": "yellow", "Applying": "yellow", "Paused": "blue",
                "Drifted": "magenta", "Degraded": "red", "Failed": "bold red", OFFLINE: "dim red",
                "Unknown": "dim"}


class Condition(enum.StrEnum):
    """What the hub knows about a cluster beyond its spoke's phase; shown after it: ``Ready (render error)``.

    A cluster with a condition is not Ready for ``--exit-code``, and counts apart in the summary.
    """

    RENDER_ERROR = "render error"  #: the hub cannot render it at the fleet commit; it runs its last good bundle


#: Longest status header line, so it never wraps (the JSON output has the hub's full reason).
HEADER_WIDTH = 160


def _when(stamp: Any) -> dt.datetime | None:
    return codec.datetime_from_wire(stamp)


def ago(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


#: A spoke clock this far from the hub's is shown; below it, report latency cannot be told from skew.
SKEW_SHOWN = dt.timedelta(seconds=30)


def clock_skew(summary: pb.ClusterSummary) -> dt.timedelta | None:
    """The spoke's clock minus the hub's, from its last report (None: no report, or no observed_at).

    It includes the report's transit and coalescing delay (a few seconds, the spoke clock looks behind);
    the hub never judges by the spoke's clock, so skew only ever explains odd timestamps.
    """
    received, observed = _when(summary.last_report), _when(summary.last_report_observed)
    return None if received is None or observed is None else observed - received


def skew_note(skew: dt.timedelta | None) -> str:
    """``spoke clock 1h0m ahead of the hub's``, or "" when it is unknown or below :data:`SKEW_SHOWN`."""
    if skew is None or abs(skew) < SKEW_SHOWN:
        return ""
    seconds = round(abs(skew).total_seconds())
    minutes = round(seconds / 60)  # a report's transit makes an hour read 59m59s
    amount = f"{minutes // 60}h{minutes % 60}m" if minutes >= 60 else f"{seconds // 60}m{seconds % 60}s"
    return f"spoke clock {amount} {'ahead of' if skew > dt.timedelta(0) else 'behind'} the hub's"


def cluster_row(summary: pb.ClusterSummary, *, now: dt.datetime) -> dict[str, Any]:
    """One cluster as a plain document (what -o json/yaml prints and the table shows).

    Offline is the hub's word (``summary.online``, :mod:`hub.presence`), never guessed from last-seen here.
    """
    last_seen = _when(summary.last_seen)
    last_report = _when(summary.last_report)
    skew = clock_skew(summary)
    phase = codec.PHASE_FROM_WIRE.get(summary.phase, codec.PHASE_FROM_WIRE[pb.PHASE_UNSPECIFIED]).value
    shown = phase if summary.online else OFFLINE
    if summary.render_errors:
        shown = f"{shown} ({Condition.RENDER_ERROR})"
    return {
        "name": summary.name,
        "labels": dict(sorted(summary.labels.items())),
        "desiredCommit": summary.desired_commit,
        "desiredDigest": summary.desired_digest,
        "appliedCommit": summary.applied_commit,
        "appliedDigest": summary.applied_digest,
        "phase": shown,
        "reportedPhase": phase,
        "objectsReady": summary.objects_ready,
        "objectsTotal": summary.objects_total,
        "drift": summary.drift_count,
        "lastSeen": last_seen.isoformat() if last_seen else None,
        "lastReport": last_report.isoformat() if last_report else None,  # the hub's clock
        "clockSkewSeconds": round(skew.total_seconds()) if skew is not None else None,
        "online": summary.online,
        "paused": summary.paused,
        "errors": list(summary.errors),
        "renderErrors": list(summary.render_errors),
        "wave": summary.wave,
        "rolloutState": summary.rollout_state,
        "pinnedDigest": summary.pinned_digest,
    }


def fleet_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary as data (``-o json``): ``{"total": 3, "phases": {"Ready": 2, "Offline": 1}}``."""
    return {"total": len(rows), "phases": dict(sorted(Counter(str(row["phase"]) for row in rows).items()))}


def fleet_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """``2 clusters: 1 Offline, 1 Ready`` (the line under the table)."""
    parts = [f"{count} {phase}" for phase, count in fleet_counts(rows)["phases"].items()]
    return f"{plural(len(rows), 'cluster')}: " + (", ".join(parts) if parts else "none registered")


def fleet_ok(rows: Sequence[Mapping[str, Any]], response: pb.ListClustersResponse) -> bool:
    """What ``--exit-code`` checks: every selected cluster Ready, and no newer commit held off the fleet."""
    return all(row["phase"] == "Ready" for row in rows) and not response.HasField("refused_commit")


def excerpt(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def refused_document(response: pb.ListClustersResponse) -> dict[str, Any] | None:
    if not response.HasField("refused_commit"):
        return None
    refused = response.refused_commit
    since = _when(refused.since)
    return {"commit": refused.commit, "kind": refused.kind, "reason": refused.reason,
            "since": since.isoformat() if since else None}


def replica_documents(response: pb.ListClustersResponse) -> list[dict[str, Any]]:
    """The hub replicas sharing the database (``status -o json``); empty on SQLite."""
    out = []
    for replica in response.replicas:
        started, beat = _when(replica.started), _when(replica.last_heartbeat)
        out.append({"name": replica.name, "address": replica.address, "leader": replica.leader,
                    "gone": replica.gone, "streams": replica.streams,
                    "started": started.isoformat() if started else None,
                    "lastHeartbeat": beat.isoformat() if beat else None})
    return out


def replica_lines(response: pb.ListClustersResponse, *, now: dt.datetime) -> list[str]:
    """Above the table: ``replicas: 2 live, 1 gone; leader NAME``, then one line per replica."""
    if not response.replicas:
        return []
    live = [r for r in response.replicas if not r.gone]
    leader = next((r for r in live if r.leader), None)
    gone = len(response.replicas) - len(live)
    first = (f"replicas: {len(live)} live" + (f", {gone} gone" if gone else "")
             + (f"; leader {leader.name} ({leader.address})" if leader else "; no leader"))
    lines = [first]
    for replica in response.replicas:
        state = ("gone" if replica.gone else
                 f"{'leader' if replica.leader else 'follower'}, {plural(replica.streams, 'Watch stream')}")
        lines.append(f"- {replica.name} {replica.address}: {state}, started {ago(_when(replica.started), now)}, "
                     f"last heartbeat {ago(_when(replica.last_heartbeat), now)}")
    return [excerpt(line, HEADER_WIDTH) for line in lines]


def fleet_header(response: pb.ListClustersResponse, *, now: dt.datetime) -> list[str]:
    """The lines above the table: the deployed commit, then a refused or unrenderable newer one, a fetch error."""
    seen = ago(_when(response.fleet_commit_seen), now)
    lines = [f"fleet commit {response.fleet_commit[:12] or '-'} (seen {seen})"]
    if response.HasField("refused_commit"):
        refused = response.refused_commit
        verb = "not deployed" if refused.kind == "render error" else "refused"
        lines.append(f"newer commit {refused.commit[:12]} {verb} ({refused.kind}, seen "
                     f"{ago(_when(refused.since), now)}): {refused.reason}")
    if response.fetch_error:
        lines.append(f"fetch failing: {response.fetch_error}")
    return [excerpt(line, HEADER_WIDTH) for line in lines]


def plural(count: int, noun: str) -> str:
    """``1 cluster``, ``2 clusters``, ``0 uses``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclasses.dataclass(frozen=True)
class Column:
    """One status column: its header, the cell for a row, and whether ``-o wide`` alone shows it."""

    name: str
    cell: Callable[[Mapping[str, Any], dt.datetime], str | Text]
    wide_only: bool = False


def _desired_cell(row: Mapping[str, Any], now: dt.datetime) -> str:
    return f"{row['desiredCommit'][:8]} {_short(row['desiredDigest'])}" if row["desiredDigest"] else "-"


def _applied_cell(row: Mapping[str, Any], now: dt.datetime) -> str | Text:
    if not row["appliedDigest"]:
        return "-"
    applied = _short(row["appliedDigest"])
    return Text(applied, style="green") if row["appliedDigest"] == row["desiredDigest"] else applied


def _phase_cell(row: Mapping[str, Any], now: dt.datetime) -> Text:
    style = "red" if row["renderErrors"] else _PHASE_STYLE.get(row["phase"], "")
    return Text(row["phase"] + (" (paused)" if row["paused"] and row["phase"] != "Paused" else ""), style=style)


def _wave_cell(row: Mapping[str, Any], now: dt.datetime) -> str:
    if not row["wave"]:
        return str(row["rolloutState"] or "-")
    return str(row["wave"]) + (f" ({row['rolloutState']})" if row["rolloutState"] else "")


def _last_seen_cell(row: Mapping[str, Any], now: dt.datetime) -> str:
    return ago(dt.datetime.fromisoformat(row["lastSeen"]) if row["lastSeen"] else None, now)


def _message_cell(row: Mapping[str, Any], now: dt.datetime) -> str:
    errors = [*row["renderErrors"], *row["errors"]]
    return excerpt(errors[0], 100) if errors else "-"


def _label_cell(label: str) -> Callable[[Mapping[str, Any], dt.datetime], str]:
    return lambda row, now: str(row["labels"].get(label, "-"))


#: Status columns in the order shown, which is also the order they are kept in a narrow terminal: the
#: last ones go first (kubectl's answer to 80 columns: drop low-value columns, never cut a cell).
STATUS_COLUMNS: tuple[Column, ...] = (
    Column("CLUSTER", lambda row, now: str(row["name"])),
    Column("PHASE", _phase_cell),
    Column("READY", lambda row, now: f"{row['objectsReady']}/{row['objectsTotal']}"),
    Column("DRIFT", lambda row, now: str(row["drift"])),
    Column("APPLIED", _applied_cell),
    Column("DESIRED", _desired_cell),
    Column("WAVE", _wave_cell),
    Column("LAST SEEN", _last_seen_cell),
    *(Column(label.upper(), _label_cell(label)) for label in KEY_LABELS),
    Column("LABELS", lambda row, now: ",".join(f"{k}={v}" for k, v in row["labels"].items()) or "-",
           wide_only=True),
    Column("MESSAGE", _message_cell, wide_only=True),
)
def _cell_width(cell: str | Text) -> int:
    return cells_.cell_len(cell) if isinstance(cell, str) else cell.cell_len


_COLUMN_GAP = 2  # rich's padding between columns with box=None and pad_edge=False


def status_table(rows: Sequence[Mapping[str, Any]], *, now: dt.datetime, width: int | None = None,
                 wide: bool = False) -> Table:
    """The status table; within ``width`` characters by dropping trailing columns (never CLUSTER and PHASE).

    ``wide`` (``-o wide``) adds LABELS and MESSAGE and keeps every column whatever the width, as kubectl does.
    """
    columns = [c for c in STATUS_COLUMNS if wide or not c.wide_only]
    cells = [[column.cell(row, now) for column in columns] for row in rows]
    if width is not None and not wide:
        widths = [max([len(column.name)] + [_cell_width(row[i]) for row in cells])
                  for i, column in enumerate(columns)]
        keep = len(columns)
        while keep > 2 and sum(widths[:keep]) + _COLUMN_GAP * (keep - 1) > width:
            keep -= 1
        columns, cells = columns[:keep], [row[:keep] for row in cells]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column.name, no_wrap=True)
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


def rfc3339(when: dt.datetime | None) -> str | None:
    """``2026-12-05T12:00:00Z``: UTC to the second, as kubectl and the Kubernetes API print times."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def event_row(event: pb.Event) -> dict[str, Any]:
    at = _when(event.at)
    details: Any = None
    if event.details_json:
        try:
            details = json.loads(event.details_json)
        except ValueError:
            details = event.details_json
    return {"id": event.id, "at": rfc3339(at), "kind": event.kind, "cluster": event.cluster,
            "commit": event.commit, "digest": event.digest, "message": event.message, "details": details}


def history_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """``convoy history``: one event a row under a header, in the status table's style."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("TIME", "CLUSTER", "TYPE", "COMMIT"):
        table.add_column(column, no_wrap=True)
    table.add_column("MESSAGE", overflow="fold")
    for row in rows:
        table.add_row(row["at"] or "-", row["cluster"] or "fleet", row["kind"], row["commit"][:8] or "-",
                      Text(row["message"]))
    return table


#: At most this many ``adopt into Git`` lines under the status table; the rest are counted.
MAX_ADOPT_HINTS = 5


def adopt_hint(cluster: str) -> str:
    return f"adopt into Git: convoy drift adopt {cluster}"


def adopt_hints(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per drifted cluster saying how to turn its manual change into a commit.

    Drift that stays shown is drift the spoke only reports (driftPolicy ``report``); corrected drift
    leaves the status within seconds, so these lines are for the changes someone may want to keep.
    """
    drifted = [str(row["name"]) for row in rows if row.get("drift")]
    lines = [adopt_hint(name) for name in drifted[:MAX_ADOPT_HINTS]]
    if len(drifted) > MAX_ADOPT_HINTS:
        lines.append(f"... and {plural(len(drifted) - MAX_ADOPT_HINTS, 'more drifted cluster')}")
    return lines


def drift_lines(items: Iterable[pb.DriftItem]) -> list[str]:
    """A readable diff of drift items: one header per object, one line per field."""
    lines: list[str] = []
    for item in items:
        ref = codec.ref_from_wire(item.ref)
        by = f"; changed by {', '.join(item.managers)}" if item.managers else ""
        lines.append(f"{ref} ({item.kind_of_drift}; app {item.app or '-'}{by})")
        for field in item.fields:
            lines.append(f"  {field.path}")
            lines.append(f"    - desired: {field.desired}")
            lines.append(f"    + live:    {field.live}")
    return lines


def describe_document(detail: pb.ClusterDetail, *, now: dt.datetime) -> dict[str, Any]:
    row = cluster_row(detail.summary, now=now)
    objects = [{"object": str(codec.ref_from_wire(o.ref)), "app": o.app, "action": o.action,
                "health": o.health, "reason": o.reason, "error": o.error} for o in detail.objects]
    drift = [{"object": str(codec.ref_from_wire(d.ref)), "app": d.app, "kind": d.kind_of_drift,
              "managers": list(d.managers),
              "fields": [{"path": f.path, "desired": f.desired, "live": f.live} for f in d.fields]}
             for d in detail.drift]
    # The render errors are the summary's (row["renderErrors"]); detail.render_errors repeats them.
    age_key = {"recipient": detail.summary.age_recipient or None,
               "changed": detail.summary.age_recipient_changed.ToDatetime(tzinfo=dt.UTC).isoformat()
               if detail.summary.HasField("age_recipient_changed") else None}
    return {**row, "message": detail.message, "ageKey": age_key, "objects": objects,
            "driftItems": drift, "recentEvents": [event_row(e) for e in detail.recent_events]}
