"""What the spoke does about drift: the per-app policy, and correct-or-report for one object.

``enforce`` judges one object the loop has just seen live (or seen gone) against its manifest:
not drift at all (identical on the fields Convoy manages; never enforced: failed, waiting, or a
``convoy.dev/ssa`` annotation that leaves it alone), drift to *report* (policy ``report``, or the
cluster is paused) or drift to *correct* (apply the manifest again, or create a deleted object
again). It answers with an ``Outcome`` — the object's entry in the current drift set and the
events for the hub's history — and the loop, which owns the state, takes it in.

A detection is news once: a resync, or the echo of a change already reported or already failing
to be corrected, yields no new event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from protos import bundle as bundles
from protos import ignoring
from protos.status import Action, DriftAction, DriftPolicy
from spoke import drift, report
from spoke.apply import applying, engine
from spoke.apply.changeset import ChangeSetEntry
from spoke.cluster import ClusterClient

__all__ = ["Outcome", "enforce", "is_stale", "policies"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Outcome:
    drift: report.DriftRecord | None             #: the object's entry in the current drift set; None: no drift
    events: tuple[report.DriftEvent, ...] = ()   #: for the hub's history, in order
    live: dict[str, Any] | None = None           #: the object as a correction left it


def policies(bundle: Mapping[str, Any]) -> tuple[dict[str, DriftPolicy], list[str]]:
    """Per-app drift policy overrides; an unknown value keeps the spoke's default and is reported."""
    found: dict[str, DriftPolicy] = {}
    problems: list[str] = []
    for app in bundle.get("apps") or []:
        value = app.get("driftPolicy")
        if not value:
            continue
        try:
            found[str(app.get("name"))] = DriftPolicy(value)
        except ValueError:
            problems.append(f"app {app.get('name')}: driftPolicy {value!r} is not one of "
                            f"{', '.join(p.value for p in DriftPolicy)}; using the spoke's default")
    return found, problems


def is_stale(event_obj: Mapping[str, Any], known: Mapping[str, Any] | None) -> bool:
    """True when ``event_obj`` is an older revision than the live copy the spoke already holds.

    A stale event (e.g. a controller's status write queued before our own correction) must not be
    judged: that would "correct" the same drift twice. resourceVersions are opaque in general, but
    every API server (etcd revisions) and kubesim hands out decimal counters; when either is not a
    number, nothing is skipped.
    """
    if known is None:
        return False
    new = str((event_obj.get("metadata") or {}).get("resourceVersion", ""))
    old = str((known.get("metadata") or {}).get("resourceVersion", ""))
    return new.isdigit() and old.isdigit() and int(new) < int(old)


def enforce(client: ClusterClient, d: engine.Desired, live: dict[str, Any] | None, *,
            known: report.DriftRecord | None, entry: ChangeSetEntry | None, policy: DriftPolicy,
            paused: bool, cluster: str) -> Outcome:
    """Judge ``d`` against its ``live`` copy (None: gone) and correct or report it; see the module doc.

    ``known`` is its entry in the drift set so far, ``entry`` what the last apply did to it.
    """
    unchanged = Outcome(known)
    if entry is not None and entry.action in (Action.FAILED, Action.WAITING):
        return unchanged  # not enforced in the first place (failed, or its app waits for another); a retry will
    mode = str(((d.manifest.get("metadata") or {}).get("annotations") or {}).get(bundles.ANNOTATION_SSA, ""))
    if mode == applying.SSA_IGNORE or (mode == applying.SSA_IF_NOT_PRESENT and live is not None):
        return unchanged  # never updated by Convoy, so a change is not drift (a deleted IfNotPresent object is)
    fields: tuple[drift.FieldDiff, ...] = ()
    managers: tuple[str, ...] = ()
    if live is None:
        kind_of_drift = "deleted"  # who deleted it is not on record anywhere the spoke can read
    else:
        # Fields the app's ignoreDifferences names are never drift: left out of the comparison.
        diffs = drift.diff(ignoring.without(d.manifest, d.ignore), live, manager=applying.MANAGER)
        if not diffs:
            if known is None:
                return Outcome(None)
            # Put back by someone else: no longer drift.
            log.info("drift on %s reverted (the live object matches the bundle again)", d.ref)
            return Outcome(None, (report.DriftEvent(d.ref, d.app, DriftAction.REVERTED, known.kind_of_drift,
                                                    known.fields),))
        kind_of_drift, fields = "modified", tuple(diffs)
        managers = drift.changed_by((live.get("metadata") or {}).get("managedFields"), diffs,
                                    manager=applying.MANAGER)
    record = report.DriftRecord(d.ref, d.app, kind_of_drift, fields, dt.datetime.now(dt.UTC), managers)
    same_as_known = known is not None and (known.kind_of_drift, known.fields) == (kind_of_drift, fields)
    if paused or policy == DriftPolicy.REPORT:
        if same_as_known:  # a resync or an echo of the same change is not a new detection
            return unchanged
        log.info("drift on %s reported (%s)", d.ref, _fields_text(record))
        return Outcome(record, (_event(record, DriftAction.REPORTED),))
    detected = _event(record, DriftAction.DETECTED)
    applied = applying.apply_one(client, d.manifest, live=live, manifest_hash=d.hash, previous_hash=None,
                                 options=applying.ApplyOptions(cluster=cluster), ignore=d.ignore)
    if applied.entry.action != Action.FAILED:
        action = DriftAction.RECREATED if kind_of_drift == "deleted" else DriftAction.CORRECTED
        log.info("drift %s on %s (%s)", action, d.ref, _fields_text(record))
        return Outcome(None, (detected, _event(record, action)), live=applied.live)
    log.warning("drift on %s not corrected: %s", d.ref, applied.entry.message)
    if same_as_known:  # a correction failing again on the next event is no news
        return Outcome(record)
    return Outcome(record, (detected, _event(record, DriftAction.FAILED, message=applied.entry.message)))


def _event(record: report.DriftRecord, action: DriftAction, *, message: str = "") -> report.DriftEvent:
    return report.DriftEvent(record.ref, record.app, action, record.kind_of_drift, record.fields,
                             record.managers, message=message)


def _fields_text(record: report.DriftRecord) -> str:
    what = "; ".join(str(f) for f in record.fields[:5]) or record.kind_of_drift
    return what + (f"; changed by {', '.join(record.managers)}" if record.managers else "")
