"""OCI pushes: which bundle artifacts the ``--oci-push`` pusher put into which registry repository.

A new table only; an empty one means "nothing pushed yet", which a pushing hub re-derives with cheap
HEADs (blobs the registry has are not re-sent).

Revision ID: 0007_ocipush
Revises: 0006_agerotate
Create Date: 2026-12-05 17:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007_ocipush'
down_revision: str | None = '0006_agerotate'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('oci_pushes',
    sa.Column('target', sa.String(length=253), nullable=False),
    sa.Column('cluster', sa.String(length=253), nullable=False),
    sa.Column('commit', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=71), nullable=False),
    sa.Column('manifest_digest', sa.String(length=71), nullable=False),
    sa.Column('latest', sa.Boolean(), nullable=False),
    sa.Column('companions', sa.Text(), nullable=False),
    sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('target', 'cluster', 'commit', 'digest')
    )


def downgrade() -> None:
    op.drop_table('oci_pushes')
