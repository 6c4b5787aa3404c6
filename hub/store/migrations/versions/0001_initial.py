"""Initial schema: clusters, tokens, commits, bundles, desired state and history, status, events.

Self-contained on purpose (no imports from hub.store.models): a migration describes the schema as it
was at this revision, whatever the models say later. Times are stored as TIMESTAMP WITH TIME ZONE
(plain text in SQLite), JSON as JSONB on PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 07:40:43.278239
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('bootstrap_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('secret_hash', sa.String(length=80), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uses_left', sa.Integer(), nullable=False),
    sa.Column('labels', JSON, nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('bundles',
    sa.Column('digest', sa.String(length=71), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('compressed_size', sa.BigInteger(), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_table('cluster_status',
    sa.Column('cluster', sa.String(length=253), nullable=False),
    sa.Column('applied_commit', sa.String(length=64), nullable=False),
    sa.Column('applied_digest', sa.String(length=71), nullable=False),
    sa.Column('phase', sa.String(length=32), nullable=False),
    sa.Column('objects', JSON, nullable=False),
    sa.Column('drift', JSON, nullable=False),
    sa.Column('errors', JSON, nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('objects_total', sa.Integer(), nullable=False),
    sa.Column('objects_ready', sa.Integer(), nullable=False),
    sa.Column('drift_count', sa.Integer(), nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('spoke_version', sa.String(length=64), nullable=False),
    sa.Column('backlog', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cluster')
    )
    op.create_table('clusters',
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('labels', JSON, nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True),
    sa.Column('credential_hash', sa.String(length=80), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('pinned_digest', sa.String(length=71), nullable=True),
    sa.Column('token_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_index(op.f('ix_clusters_credential_hash'), 'clusters', ['credential_hash'], unique=True)
    op.create_table('commits',
    sa.Column('sha', sa.String(length=64), nullable=False),
    sa.Column('author', sa.Text(), nullable=False),
    sa.Column('authored_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('signature_verdict', sa.String(length=32), nullable=False),
    sa.Column('signature_detail', sa.Text(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('refusal_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('sha')
    )
    op.create_index(op.f('ix_commits_seen_at'), 'commits', ['seen_at'], unique=False)
    op.create_table('desired_state_history',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('cluster', sa.String(length=253), nullable=False),
    sa.Column('commit', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=71), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_desired_state_history_cluster_id', 'desired_state_history', ['cluster', 'id'], unique=False)
    op.create_index(op.f('ix_desired_state_history_digest'), 'desired_state_history', ['digest'], unique=False)
    op.create_table('events',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('cluster', sa.String(length=253), nullable=True),
    sa.Column('commit', sa.String(length=64), nullable=True),
    sa.Column('digest', sa.String(length=71), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_events_at'), 'events', ['at'], unique=False)
    op.create_index('ix_events_cluster_id', 'events', ['cluster', 'id'], unique=False)
    op.create_table('hub_state',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('render_errors',
    sa.Column('cluster', sa.String(length=253), nullable=False),
    sa.Column('commit', sa.String(length=64), nullable=False),
    sa.Column('errors', JSON, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cluster')
    )
    op.create_table('desired_states',
    sa.Column('cluster', sa.String(length=253), nullable=False),
    sa.Column('commit', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=71), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['bundles.digest'], ),
    sa.PrimaryKeyConstraint('cluster')
    )
    op.create_index(op.f('ix_desired_states_digest'), 'desired_states', ['digest'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_desired_states_digest'), table_name='desired_states')
    op.drop_table('desired_states')
    op.drop_table('render_errors')
    op.drop_table('hub_state')
    op.drop_index('ix_events_cluster_id', table_name='events')
    op.drop_index(op.f('ix_events_at'), table_name='events')
    op.drop_table('events')
    op.drop_index(op.f('ix_desired_state_history_digest'), table_name='desired_state_history')
    op.drop_index('ix_desired_state_history_cluster_id', table_name='desired_state_history')
    op.drop_table('desired_state_history')
    op.drop_index(op.f('ix_commits_seen_at'), table_name='commits')
    op.drop_table('commits')
    op.drop_index(op.f('ix_clusters_credential_hash'), table_name='clusters')
    op.drop_table('clusters')
    op.drop_table('cluster_status')
    op.drop_table('bundles')
    op.drop_table('bootstrap_tokens')
