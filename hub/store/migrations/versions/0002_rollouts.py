"""Progressive rollouts (issue 8): one row per rollout, its state machine as a JSON document.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('rollouts',
    sa.Column('seq', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('commit', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('document', JSON, nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_index(op.f('ix_rollouts_state'), 'rollouts', ['state'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_rollouts_state'), table_name='rollouts')
    op.drop_table('rollouts')
