"""Presence (issue 12): when a cluster's Watch stream opened and when its last one ended.

Revision ID: 0004_presence
Revises: 0003_creds
Create Date: 2026-12-05 14:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_presence'
down_revision: str | None = '0003_creds'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('clusters') as batch:
        batch.add_column(sa.Column('connected_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('disconnected_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clusters') as batch:
        batch.drop_column('disconnected_at')
        batch.drop_column('connected_at')
