"""The Convoy spoke: the light agent in every cluster.

Map:

* ``cli`` — ``convoy spoke run`` / ``convoy spoke install``; ``settings`` (flags and ``CONVOY_SPOKE_*``).
* ``agent`` — the reconcile loop (``reconcile_once``: fetch → verify → apply → prune → assess → report),
  the drift handling and the health endpoint.
* ``hubclient`` — the gRPC client of the hub (register with a pinned CA, Watch with inline bundles,
  GetBundle, StreamStatus or ReportStatus);
  ``credentials`` — the cluster's credential, hub CA and signing key, kept in a Secret.
* ``cluster/`` — the official ``kubernetes`` client behind one edge: discovery, retries, plain-dict verbs.
* ``apply/`` — ``ordering`` (stages and kind order, pure), staged server-side apply (``applying``),
  prune (``pruning``), waits (``waiting``), change sets, ``engine`` composing them.
* ``inventory`` — what the spoke applied, and the last applied bundle, kept in the cluster.
* ``watching`` — one watch per kind in the bundle, feeding drift detection.
* ``drift`` — field-level diff of what Convoy manages (pure); ``prune`` — what may be deleted (pure);
  ``health/`` — kstatus rules, one module per kind (pure).
* ``report`` — coalesced status reports; ``install`` — the manifests that install the spoke.

Imports nothing from ``hub`` and needs neither SQLModel nor GitPython.
"""
