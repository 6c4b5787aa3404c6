"""Whether a cluster's spoke is there: the one rule the fleet view and the rollout gate share.

The hub keeps two facts per cluster in the database (``clusters`` table):

* ``last_seen`` — refreshed once per heartbeat while the cluster has a Watch stream open on any hub
  process (:meth:`hub.api.spoke.SpokeServicer.keep_presence`) and by every status report;
* ``disconnected_at`` — set when the cluster's last Watch stream on a hub process ends (the spoke
  closed it, its connection broke, or the hub's HTTP/2 ping went unanswered), cleared when a Watch
  opens again.

A cluster is **online** when it has not disconnected since its last Watch opened and was seen
within :func:`silent_after` of now. The second condition covers what no hub saw end: a hub process
that died with streams open. A hub that shuts down cleanly records no disconnects (its streams end
because the hub goes, not the spokes), so after a restart every cluster stays online on its
``last_seen`` for the few seconds its spoke needs to reconnect, instead of showing the fleet offline.

Pure: no clock, no database. Callers pass the stored facts and ``now``.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["is_online", "ping_timeout", "silent_after"]


def ping_timeout(heartbeat_seconds: float) -> float:
    """Seconds the hub waits for a spoke to answer its HTTP/2 ping before dropping the connection."""
    return min(10.0, max(2.0, heartbeat_seconds))


def silent_after(heartbeat_seconds: float) -> dt.timedelta:
    """How long a cluster may go unseen before it counts as offline.

    ``last_seen`` of a watching cluster is refreshed once per heartbeat, so it may be one heartbeat
    old; a spoke that vanished is dropped by the hub one heartbeat plus the ping timeout later.
    """
    return dt.timedelta(seconds=2 * heartbeat_seconds + ping_timeout(heartbeat_seconds))


def is_online(*, last_seen: dt.datetime | None, disconnected_at: dt.datetime | None, now: dt.datetime,
              heartbeat_seconds: float) -> bool:
    """The presence rule (see the module docstring). Never seen at all: offline."""
    if disconnected_at is not None or last_seen is None:
        return False
    return now - last_seen <= silent_after(heartbeat_seconds)
