"""The Convoy hub: follows the fleet repository, renders a bundle per cluster, serves spokes.

Map (one module per concept; pure modules import no grpc, sqlmodel or git). The packages form layers,
checked by import-linter (pyproject.toml): a module imports only from the layers below its own —
``cli`` → ``commands`` → ``localfleet`` → ``api`` | ``web`` | ``adminclient`` → ``service`` → ``rollout``
→ ``settings`` → ``source`` | ``store`` | ``notify`` | ``presence`` | ``metrics`` → ``render`` → ``fleet``
→ ``tree`` | ``security`` | ``cliconfig``.

* ``cli`` — the root ``convoy`` command (lazy subcommands); ``commands/`` — one module per area
  (``render``/``build`` without a hub, ``hubserve``, ``fleet`` (status, history, pause, tokens, ...),
  ``sandbox``, ``rollout``).
* ``settings`` — ``HubSettings`` from flags, ``CONVOY_HUB_*`` and a config file.
* ``service`` — the sync loop: fetch → verify → render → store signed bundles → set desired → notify.
* ``notify`` — per-cluster fan-out to open Watch streams (and, through ``store.replicas``, to other replicas' streams).
* ``metrics`` — the Prometheus metric families the service feeds and ``web`` serves.
* ``source/`` — Git: bare mirror, forward-only and signed-commit checks, webhook authentication.
* ``fleet/`` — the fleet.yaml model, label selectors, cluster declarations, per-cluster resolution.
* ``tree/`` — the repository at one revision: RepoFS views, bounded YAML loading, the ``RenderError`` family.
* ``render/`` — the native kustomize engine, substitution, bundle assembly, the cached pipeline.
* ``store/`` — SQLModel tables, database access (SQLite/PostgreSQL), repository functions (one module per
  record kind), Alembic.
* ``security/`` — the CA and serving certificate, the bundle-signing key, credentials and join tokens,
  the admin credential (``admin_credential``).
* ``api/`` — gRPC servicers (spoke and admin), auth, limits, batching, ``grpc_errors`` (exceptions to
  status codes), the server.
* ``web/`` — aiohttp side port: webhook, ``/metrics``, health and readiness.
* ``rollout/`` — progressive rollouts: the pure state machine and its controller.
* ``cliconfig``/``adminclient`` — the CLI's named hubs and its AdminService client.
* ``localfleet`` — a whole fleet as local processes (``convoy sandbox up``, end-to-end tests).
"""
