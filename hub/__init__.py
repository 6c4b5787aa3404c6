"""The Convoy hub: follows the fleet repository, renders a bundle per cluster, serves spokes.

Map (one module per concept; pure modules import no grpc, sqlmodel or git):

* ``cli`` — the root ``convoy`` command; other sides' groups join through the
  ``convoy.commands`` entry points.
* ``fleet/`` — the fleet.yaml model, label selectors, per-cluster resolution.
* ``render/`` — the native kustomize engine, substitution, bundle assembly, render cache.
* ``source/`` — Git: bare mirror, fetch, commit verification.
* ``store/`` — SQLModel tables, database access, Alembic migrations.
* ``api/`` — gRPC servicers (spoke and admin), auth, status mapping.
* ``web/`` — webhook, metrics, health endpoints.
* ``rollout/`` — progressive rollouts.
"""
