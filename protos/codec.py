"""Conversions between the wire messages and the shared Python types.

The stubs are generated code; this module and the gRPC edge modules of the hub
and the spoke are the only places that touch them.
"""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2

from protos import objects, status
from protos.convoy.v1 import convoy_pb2 as pb

__all__ = [
    "PHASE_FROM_WIRE",
    "PHASE_TO_WIRE",
    "datetime_from_wire",
    "pb",
    "ref_from_wire",
    "ref_to_wire",
    "timestamp",
]

PHASE_TO_WIRE: dict[status.Phase, int] = {
    status.Phase.APPLYING: pb.PHASE_APPLYING,
    status.Phase.PROGRESSING: pb.PHASE_PROGRESSING,
    status.Phase.READY: pb.PHASE_READY,
    status.Phase.DEGRADED: pb.PHASE_DEGRADED,
    status.Phase.FAILED: pb.PHASE_FAILED,
    status.Phase.DRIFTED: pb.PHASE_DRIFTED,
    status.Phase.PAUSED: pb.PHASE_PAUSED,
    status.Phase.UNKNOWN: pb.PHASE_UNSPECIFIED,
}
PHASE_FROM_WIRE: dict[int, status.Phase] = {wire: phase for phase, wire in PHASE_TO_WIRE.items()}


def ref_to_wire(ref: objects.ObjectRef) -> pb.ObjectRef:
    return pb.ObjectRef(group=ref.group, kind=ref.kind, namespace=ref.namespace, name=ref.name)


def ref_from_wire(message: pb.ObjectRef) -> objects.ObjectRef:
    return objects.ObjectRef(group=message.group, kind=message.kind, namespace=message.namespace,
                             name=message.name)


def timestamp(when: dt.datetime | None = None) -> timestamp_pb2.Timestamp:
    """A wire timestamp of ``when`` (UTC now when omitted)."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime((when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None))
    return stamp


def datetime_from_wire(stamp: timestamp_pb2.Timestamp) -> dt.datetime | None:
    """An aware UTC datetime, or None for an unset timestamp."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.ToDatetime().replace(tzinfo=dt.UTC)
