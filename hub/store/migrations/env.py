"""Alembic environment of the hub store.

Run programmatically by ``hub.store.db.Database.migrate`` (``convoy hub migrate`` and every hub
start), which passes an open connection in ``config.attributes["connection"]``. Offline SQL
generation (``--sql``) uses the ``sqlalchemy.url`` main option instead.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from hub.store import models  # noqa: F401  (registers every table on SQLModel.metadata)

target_metadata = SQLModel.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if context.is_offline_mode() or connection is None:
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                          literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run()
