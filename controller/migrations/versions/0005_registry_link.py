"""registry link tables (controller/registry_link/models.py)

Revision ID: 0005_registry_link
Revises: 0004_alerts
Create Date: 2026-12-02 13:30:00

The site controller's link to the national registry: the outbox of submissions (idempotency keys, retries), the
mirror of the registry's decisions by subject, the feed cursor per DPC, and the commissioning allowances granted
by operators. New tables only; tables a create_all of the current models made already are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0005_registry_link'
down_revision: str | None = '0004_alerts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _absent(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _absent('registry_outbox'):
        op.create_table('registry_outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', AutoString(length=20), nullable=False),
        sa.Column('dpc', AutoString(length=64), nullable=False),
        sa.Column('idempotency_key', AutoString(length=100), nullable=False),
        sa.Column('payload', AutoString(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
        sa.Column('sent_at', UTCDateTime(), nullable=True),
        sa.Column('refused_status', sa.Integer(), nullable=True),
        sa.Column('last_error', AutoString(length=500), nullable=True),
        sa.Column('result', AutoString(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('idempotency_key'),
        )
        with op.batch_alter_table('registry_outbox', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_registry_outbox_created_at'), ['created_at'], unique=False)
            batch_op.create_index(batch_op.f('ix_registry_outbox_next_attempt_at'), ['next_attempt_at'],
                                  unique=False)
            batch_op.create_index(batch_op.f('ix_registry_outbox_sent_at'), ['sent_at'], unique=False)

    if _absent('registry_mirror'):
        op.create_table('registry_mirror',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dpc', AutoString(length=64), nullable=False),
        sa.Column('kind', AutoString(length=20), nullable=False),
        sa.Column('subject', AutoString(length=100), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('data', AutoString(), nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dpc', 'kind', 'subject'),
        )
        with op.batch_alter_table('registry_mirror', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_registry_mirror_dpc'), ['dpc'], unique=False)

    if _absent('registry_cursor'):
        op.create_table('registry_cursor',
        sa.Column('dpc', AutoString(length=64), nullable=False),
        sa.Column('after', sa.Integer(), nullable=False),
        sa.Column('head_seq', sa.Integer(), nullable=False),
        sa.Column('synced_at', UTCDateTime(), nullable=True),
        sa.Column('last_error', AutoString(length=500), nullable=True),
        sa.PrimaryKeyConstraint('dpc'),
        )

    if _absent('commissioning_allowance'):
        op.create_table('commissioning_allowance',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dpc', AutoString(length=64), nullable=False),
        sa.Column('serial', AutoString(length=100), nullable=False),
        sa.Column('device_id', AutoString(length=100), nullable=True),
        sa.Column('starts_at', UTCDateTime(), nullable=False),
        sa.Column('ends_at', UTCDateTime(), nullable=False),
        sa.Column('reason', AutoString(length=500), nullable=False),
        sa.Column('granted_by', AutoString(length=200), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('revoked_at', UTCDateTime(), nullable=True),
        sa.Column('outbox_key', AutoString(length=100), nullable=False),
        sa.Column('registry_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        )
        with op.batch_alter_table('commissioning_allowance', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_commissioning_allowance_serial'), ['serial'], unique=False)


def downgrade() -> None:
    for table in ('commissioning_allowance', 'registry_cursor', 'registry_mirror', 'registry_outbox'):
        op.drop_table(table)
