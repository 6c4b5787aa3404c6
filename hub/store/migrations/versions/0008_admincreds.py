"""Named admin credentials: one row per credential made with ``convoy credential create`` (hash only).

Revision ID: 0008_admincreds
Revises: 0007_ocipush
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_admincreds'
down_revision: str | None = '0007_ocipush'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'admin_credentials',
        sa.Column('name', sa.String(length=253), nullable=False),
        sa.Column('secret_hash', sa.String(length=80), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=253), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )
    op.create_index(op.f('ix_admin_credentials_secret_hash'), 'admin_credentials', ['secret_hash'], unique=True)


def downgrade() -> None:
    op.drop_index(op.f('ix_admin_credentials_secret_hash'), table_name='admin_credentials')
    op.drop_table('admin_credentials')
