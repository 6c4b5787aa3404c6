"""Credentials that can be withdrawn (issue 13): cluster credential rotation, bootstrap tokens bound to
a cluster name or a name prefix.

Only nullable columns are added, so the migration is an ALTER TABLE ... ADD COLUMN on both databases
and existing rows mean what they meant before (no rotation pending, unbound tokens).

Revision ID: 0003_creds
Revises: 0002
Create Date: 2026-12-05 14:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003_creds'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('clusters', sa.Column('rotation_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('clusters', sa.Column('next_credential_hash', sa.String(length=80), nullable=True))
    op.add_column('clusters', sa.Column('next_credential_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_clusters_next_credential_hash'), 'clusters', ['next_credential_hash'], unique=True)
    op.add_column('bootstrap_tokens', sa.Column('cluster_name', sa.String(length=253), nullable=True))
    op.add_column('bootstrap_tokens', sa.Column('name_prefix', sa.String(length=253), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bootstrap_tokens') as batch:
        batch.drop_column('name_prefix')
        batch.drop_column('cluster_name')
    op.drop_index(op.f('ix_clusters_next_credential_hash'), table_name='clusters')
    with op.batch_alter_table('clusters') as batch:
        batch.drop_column('next_credential_at')
        batch.drop_column('next_credential_hash')
        batch.drop_column('rotation_requested_at')
