"""Age key rotation: a pending request for a cluster's spoke to make a new key, and its previous key.

Only nullable columns are added (no rotation pending, no previous key), so existing rows mean what
they meant before.

Revision ID: 0006_agerotate
Revises: 0005_sops
Create Date: 2026-12-05 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_agerotate'
down_revision: str | None = '0005_sops'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('clusters', sa.Column('age_rotation_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('clusters', sa.Column('age_recipient_previous', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clusters') as batch:
        batch.drop_column('age_recipient_previous')
        batch.drop_column('age_rotation_requested_at')
