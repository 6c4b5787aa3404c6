"""The hub's state in a SQL database through SQLModel (DESIGN decision 7): SQLite or PostgreSQL.

Map:

* ``models`` — every table model, in one module, plus ``EventKind`` (the event-log vocabulary) and the
  ``UTCDateTime`` column type (timezone-aware UTC on both databases).
* ``db`` — ``Database(url)``: engine, ``session()`` unit of work, ``migrate()`` (Alembic, programmatic);
  SQLite gets WAL, ``busy_timeout``, foreign keys and ``BEGIN IMMEDIATE`` writes.
* ``repository/`` — the query functions the service calls, one module per record kind (tokens, clusters,
  commits, bundles, desired state and its history, status, render errors, event log, hub state,
  rollouts), all re-exported by the package; synchronous, one ``Session`` each.
* ``replicas`` — several hub replicas on one PostgreSQL: the LISTEN/NOTIFY change feed, the leader lease
  (advisory lock), and the lock that keeps a second replica off an SQLite file.
* ``errors`` — typed store exceptions (``TokenRefused``, ``ClusterExists``, ``StoreError`` ...).
* ``migrations/`` — the Alembic environment and versions, shipped as package data so
  ``convoy hub migrate`` works from an installed package.

Table models are not wire messages or domain objects: the service converts at its edge.
"""
