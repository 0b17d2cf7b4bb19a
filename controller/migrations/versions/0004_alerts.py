"""alerts tables (controller/alerts/models.py)

Revision ID: 0004_alerts
Revises: 0003_planner
Create Date: 2026-12-02 13:25:22.161822

The alerts side: channels, rules, alerts with their state (pending since, so a restart keeps sustain timers),
their history of events, and deliveries with attempts. New tables only; tables that a create_all of the current
models made already (databases adopted by controller.db) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0004_alerts'
down_revision: str | None = '0003_planner'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _absent(table: str) -> bool:
    """Tables made by create_all with the current models (databases adopted by controller.db) are kept."""
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _absent('alert_channel'):
        op.create_table('alert_channel',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', AutoString(length=100), nullable=False),
        sa.Column('kind', AutoString(length=16), nullable=False),
        sa.Column('url', AutoString(length=2000), nullable=True),
        sa.Column('secret', AutoString(length=500), nullable=True),
        sa.Column('recipients_json', AutoString(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name')
        )

    if _absent('alert_delivery'):
        op.create_table('alert_delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=True),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('channel', AutoString(length=100), nullable=False),
        sa.Column('kind', AutoString(length=16), nullable=False),
        sa.Column('event', AutoString(length=16), nullable=False),
        sa.Column('status', AutoString(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
        sa.Column('last_error', AutoString(), nullable=True),
        sa.Column('payload_json', AutoString(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('sent_at', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'channel', name='uq_alert_delivery_event_channel')
        )
        with op.batch_alter_table('alert_delivery', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_alert_delivery_alert_id'), ['alert_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_alert_delivery_status'), ['status'], unique=False)

    if _absent('alert_event'):
        op.create_table('alert_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.Column('event', AutoString(length=16), nullable=False),
        sa.Column('status', AutoString(length=16), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=True),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('message', AutoString(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('alert_event', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_alert_event_alert_id'), ['alert_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_alert_event_at'), ['at'], unique=False)

    if _absent('alert_instance'):
        op.create_table('alert_instance',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('subject', AutoString(length=300), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=True),
        sa.Column('status', AutoString(length=16), nullable=False),
        sa.Column('since', UTCDateTime(), nullable=False),
        sa.Column('fired_at', UTCDateTime(), nullable=True),
        sa.Column('ended_at', UTCDateTime(), nullable=True),
        sa.Column('last_notified_at', UTCDateTime(), nullable=True),
        sa.Column('notifications', sa.Integer(), nullable=False),
        sa.Column('acknowledged_by', AutoString(length=200), nullable=True),
        sa.Column('acknowledged_at', UTCDateTime(), nullable=True),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('message', AutoString(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('alert_instance', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_alert_instance_rule_id'), ['rule_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_alert_instance_status'), ['status'], unique=False)

    if _absent('alert_rule'):
        op.create_table('alert_rule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', AutoString(length=200), nullable=False),
        sa.Column('description', AutoString(), nullable=False),
        sa.Column('condition', AutoString(length=40), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=True),
        sa.Column('sustain_s', sa.Float(), nullable=False),
        sa.Column('scope_json', AutoString(), nullable=False),
        sa.Column('severity', AutoString(length=16), nullable=False),
        sa.Column('channels_json', AutoString(), nullable=False),
        sa.Column('repeat_s', sa.Float(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('notify_resolved', sa.Boolean(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.Column('deleted_at', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )


def downgrade() -> None:
    op.drop_table('alert_rule')
    with op.batch_alter_table('alert_instance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_instance_status'))
        batch_op.drop_index(batch_op.f('ix_alert_instance_rule_id'))

    op.drop_table('alert_instance')
    with op.batch_alter_table('alert_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_event_at'))
        batch_op.drop_index(batch_op.f('ix_alert_event_alert_id'))

    op.drop_table('alert_event')
    with op.batch_alter_table('alert_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_delivery_status'))
        batch_op.drop_index(batch_op.f('ix_alert_delivery_alert_id'))

    op.drop_table('alert_delivery')
    op.drop_table('alert_channel')
