"""Sealed secrets (issue 18): each cluster's public age recipient, and when it changed.

Revision ID: 0005_sops
Revises: 0004_presence
Create Date: 2026-12-05 15:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_sops'
down_revision: str | None = '0004_presence'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('clusters') as batch:
        batch.add_column(sa.Column('age_recipient', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('age_recipient_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clusters') as batch:
        batch.drop_column('age_recipient_at')
        batch.drop_column('age_recipient')
