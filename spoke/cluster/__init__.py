"""The spoke's Kubernetes API edge.

Map: ``client`` (``ClusterClient``: discovery, get/list/apply/create/replace/delete/watch as plain
dicts, ``update_with`` for read-modify-write with 409 retry) · ``retrying`` (which failures are
transient; jittered backoff honouring Retry-After) · ``errors`` (the exception tree; library
exceptions never leave this package).
"""

from __future__ import annotations

from spoke.cluster import errors, retrying
from spoke.cluster.client import (
           ClientOptions,
           ClusterClient,
           ListResult,
           ResourceInfo,
           WatchEvent,
           WatchStream,
)

__all__ = ["ClientOptions", "ClusterClient", "ListResult", "ResourceInfo", "WatchEvent", "WatchStream",
           "errors", "retrying"]
