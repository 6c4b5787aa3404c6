"""History events for a spoke's drift detections and corrections: one event per entry.

Pure: the drift event documents of one status report (as :mod:`hub.api.spoke` converts them from
the wire, already bounds-checked) in, :class:`~hub.store.models.Event` rows out. Each names the
object (``ObjectRef``'s one printing), the fields, who changed them and what the spoke did; what is
stored is clipped again here, because an event log outlives the report it came from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from hub.store.models import Event, EventKind
from protos.objects import ObjectRef
from protos.status import DriftAction

__all__ = ["FIELDS_IN_DETAILS", "FIELDS_IN_MESSAGE", "KIND_OF", "events_for", "message", "objects_text"]

#: Which event kind each action is recorded as.
KIND_OF: Mapping[str, EventKind] = {
    DriftAction.DETECTED: EventKind.DRIFT,
    DriftAction.REPORTED: EventKind.DRIFT,
    DriftAction.FAILED: EventKind.DRIFT,
    DriftAction.CORRECTED: EventKind.DRIFT_CORRECTED,
    DriftAction.RECREATED: EventKind.DRIFT_CORRECTED,
    DriftAction.REVERTED: EventKind.DRIFT_CLEARED,
    DriftAction.SUPERSEDED: EventKind.DRIFT_CLEARED,
    DriftAction.NOT_RECORDED: EventKind.DRIFT,
}

FIELDS_IN_MESSAGE = 3
FIELDS_IN_DETAILS = 20
_VALUE_CHARS = 80      #: of a desired/live value in the message
_DETAIL_CHARS = 512    #: of any text kept in the details


def events_for(cluster: str, docs: Sequence[Mapping[str, Any]], *, digest: str | None,
               now: dt.datetime) -> list[Event]:
    """One event per drift event document, in the order the spoke recorded them."""
    return [_event(cluster, doc, digest=digest, now=now) for doc in docs]


def objects_text(docs: Sequence[Mapping[str, Any]], *, shown: int = 5) -> str:
    """``Deployment.apps/shop/web, ConfigMap/shop/c (+2 more)`` for drift item documents."""
    names = [str(_ref(doc.get("ref") or {})) for doc in docs[:shown]]
    return ", ".join(names) + (f" (+{len(docs) - shown} more)" if len(docs) > shown else "")


def _ref(doc: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(group=str(doc.get("group", "")), kind=str(doc.get("kind", "")),
                     namespace=str(doc.get("namespace", "")), name=str(doc.get("name", "")))


def _event(cluster: str, doc: Mapping[str, Any], *, digest: str | None, now: dt.datetime) -> Event:
    ref_doc = doc.get("ref") or {}
    ref = _ref(ref_doc)
    action = str(doc.get("action", ""))
    fields = [f for f in doc.get("fields") or [] if isinstance(f, Mapping)]
    managers = [str(m)[:128] for m in doc.get("managers") or []][:8]
    details = {
        "object": str(ref), "ref": {k: str(ref_doc.get(k, "")) for k in ("group", "kind", "namespace", "name")},
        "app": _clip(str(doc.get("app", "")), _DETAIL_CHARS), "action": action,
        "kindOfDrift": str(doc.get("kind_of_drift", "")), "managers": managers,
        "fields": [{k: _clip(str(f.get(k, "")), _DETAIL_CHARS) for k in ("path", "desired", "live")}
                   for f in fields[:FIELDS_IN_DETAILS]],
        "observedAt": doc.get("at"),
    }
    if len(fields) > FIELDS_IN_DETAILS:
        details["moreFields"] = len(fields) - FIELDS_IN_DETAILS
    if doc.get("message"):
        details["error"] = _clip(str(doc["message"]), _DETAIL_CHARS)
    kind = KIND_OF.get(action, EventKind.DRIFT)
    text = message(action, ref, fields, managers, str(doc.get("kind_of_drift", "")), str(doc.get("message", "")))
    return Event(at=now, kind=kind.value, cluster=cluster, digest=digest or None, message=f"cluster {cluster}: {text}",
                 details=details)


def message(action: str, ref: ObjectRef, fields: Sequence[Mapping[str, Any]], managers: Sequence[str],
            kind_of_drift: str, error: str = "") -> str:
    """``drift corrected on Deployment.apps/shop/web: .spec.replicas desired 3, live 7; changed by kubectl``."""
    deleted = kind_of_drift == "deleted"
    what = "deleted" if deleted else _fields_text(fields)
    by = f"; changed by {', '.join(managers)}" if managers else ""
    if action == DriftAction.DETECTED:
        return f"drift detected on {ref}: {what}{by}; correcting"
    if action == DriftAction.REPORTED:
        return f"drift on {ref} left in place (reported only): {what}{by}"
    if action == DriftAction.CORRECTED:
        return f"drift corrected on {ref}: {what}{by}"
    if action == DriftAction.RECREATED:
        return f"drift corrected on {ref}: deleted object recreated"
    if action == DriftAction.FAILED:
        return f"drift on {ref} not corrected: {_clip(error, 300) or 'apply failed'} ({what}{by})"
    if action == DriftAction.REVERTED:
        return f"drift on {ref} gone: the live object matches its bundle again (reverted outside Convoy)"
    if action == DriftAction.SUPERSEDED:
        return f"drift on {ref} gone: overwritten by applying a new bundle ({what})"
    if action == DriftAction.NOT_RECORDED:  # the spoke's count and span of drift history it had to drop
        return _clip(error, 300) or "drift events not recorded by the spoke"
    return f"drift on {ref}: {action}: {what}{by}"


def _fields_text(fields: Sequence[Mapping[str, Any]]) -> str:
    shown = [f"{_clip(str(f.get('path', '')), 200)} desired {_clip(str(f.get('desired', '')), _VALUE_CHARS)}, "
             f"live {_clip(str(f.get('live', '')), _VALUE_CHARS)}" for f in fields[:FIELDS_IN_MESSAGE]]
    more = len(fields) - FIELDS_IN_MESSAGE
    return "; ".join(shown) + (f" (+{more} more field(s))" if more > 0 else "") if shown else "fields not given"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
