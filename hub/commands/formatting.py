"""Pure formatting of admin responses: rows, tables and documents. Printing happens at the edge."""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from protos import codec
from protos.convoy.v1 import convoy_pb2 as pb

__all__ = [
    "HEADER_WIDTH",
    "KEY_LABELS",
    "OFFLINE",
    "SKEW_SHOWN",
    "Condition",
    "ago",
    "clock_skew",
    "cluster_row",
    "describe_document",
    "drift_lines",
    "event_row",
    "excerpt",
    "fleet_header",
    "fleet_ok",
    "fleet_summary",
    "refused_document",
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


def fleet_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    counts = Counter(str(row["phase"]) for row in rows)
    parts = [f"{count} {phase}" for phase, count in sorted(counts.items())]
    return f"{len(rows)} clusters: " + (", ".join(parts) if parts else "none registered")


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


def status_table(rows: Sequence[Mapping[str, Any]], *, now: dt.datetime) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("CLUSTER", *(label.upper() for label in KEY_LABELS), "DESIRED", "APPLIED", "PHASE",
                   "READY", "DRIFT", "WAVE", "LAST SEEN"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        desired = f"{row['desiredCommit'][:8]} {_short(row['desiredDigest'])}" if row["desiredDigest"] else "-"
        applied = _short(row["appliedDigest"]) if row["appliedDigest"] else "-"
        if row["appliedDigest"] and row["appliedDigest"] == row["desiredDigest"]:
            applied = Text(applied, style="green")  # type: ignore[assignment]
        style = "red" if row["renderErrors"] else _PHASE_STYLE.get(row["phase"], "")
        phase = Text(row["phase"] + (" (paused)" if row["paused"] and row["phase"] != "Paused" else ""),
                     style=style)
        wave = row["wave"] + (f" ({row['rolloutState']})" if row["rolloutState"] else "") if row["wave"] else (
            row["rolloutState"] or "-")
        last_seen = dt.datetime.fromisoformat(row["lastSeen"]) if row["lastSeen"] else None
        table.add_row(
            row["name"], *(row["labels"].get(label, "-") for label in KEY_LABELS), desired, applied, phase,
            f"{row['objectsReady']}/{row['objectsTotal']}", str(row["drift"]), wave, ago(last_seen, now),
        )
    return table


def event_row(event: pb.Event) -> dict[str, Any]:
    at = _when(event.at)
    details: Any = None
    if event.details_json:
        try:
            details = json.loads(event.details_json)
        except ValueError:
            details = event.details_json
    return {"id": event.id, "at": at.isoformat() if at else None, "kind": event.kind, "cluster": event.cluster,
            "commit": event.commit, "digest": event.digest, "message": event.message, "details": details}


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
