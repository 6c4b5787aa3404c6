"""The Convoy spoke: the light agent in every cluster.

Map, top layer first (import-linter holds the layers, and forbids import cycles):

* ``cli`` — ``convoy spoke run`` / ``convoy spoke install``; ``install`` — the manifests that install
  the spoke, printed or applied.
* ``agent`` — the reconcile loop (``reconcile_once``: fetch → verify → apply → prune → assess → report)
  and the threads around it; each part it composes is its own module:
  ``registration`` (trust handshake, Register, keeping a rotated credential),
  ``drift_policy`` (correct or report one drifted object), ``phase`` (status and phase, pure),
  ``healthz`` (the Deployment's probes).
* ``apply/`` — ``ordering`` (stages and kind order, pure), ``changeset`` (results as values, pure),
  ``applying`` (server-side apply), ``pruning`` (deletes), ``waiting`` (waits for CRDs, namespaces,
  health), ``engine`` composing them; ``watching`` — one watch per kind in the bundle, feeding drift
  detection; ``hubclient`` — the only gRPC: the client of the hub (register with a pinned CA, Watch
  with inline bundles, GetBundle, StreamStatus or ReportStatus).
* ``inventory`` — what the spoke applied, and the last applied bundle, kept in the cluster;
  ``credentials`` — the cluster's credential, hub CA and signing key, kept in a Secret;
  ``report`` — the status values and the coalescing reporter.
* ``cluster/`` — the only Kubernetes client: the official one behind one edge (discovery, retries,
  plain-dict verbs); and the pure rules: ``drift`` (field-level diff of what Convoy manages),
  ``prune`` (what may be deleted), ``health/`` (kstatus rules, one module per kind), ``settings``
  (flags and ``CONVOY_SPOKE_*``).
* ``backoff`` — full-jitter backoff, the one rule for every wait after a failure.

Imports nothing from ``hub`` and needs neither SQLModel nor GitPython.
"""
