"""initial registry schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 10:42:45.479354
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('accredited_pool',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', AutoString(length=200), nullable=False),
    sa.Column('endpoints', sa.JSON(), nullable=False),
    sa.Column('accreditation_number', AutoString(length=100), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('accreditation_number')
    )
    op.create_table('api_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', AutoString(length=100), nullable=False),
    sa.Column('role', AutoString(length=20), nullable=False),
    sa.Column('prefix', AutoString(length=16), nullable=False),
    sa.Column('salt', AutoString(length=64), nullable=False),
    sa.Column('hash', AutoString(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_key_prefix'), ['prefix'], unique=False)

    op.create_table('audit_event',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('prev_hash', AutoString(length=64), nullable=False),
    sa.Column('hash', AutoString(length=64), nullable=False),
    sa.Column('actor', AutoString(length=200), nullable=False),
    sa.Column('ts', UTCDateTime(), nullable=False),
    sa.Column('entity', AutoString(length=50), nullable=False),
    sa.Column('entity_id', AutoString(length=100), nullable=False),
    sa.Column('action', AutoString(length=50), nullable=False),
    sa.Column('before', sa.Text(), nullable=True),
    sa.Column('after', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('hash')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entity', ['entity', 'entity_id', 'seq'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('idempotency_record',
    sa.Column('key', AutoString(length=100), nullable=False),
    sa.Column('endpoint', AutoString(length=200), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('licensee',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bin', AutoString(length=12), nullable=False),
    sa.Column('name', AutoString(length=300), nullable=False),
    sa.Column('licence_number', AutoString(length=100), nullable=False),
    sa.Column('subtype', AutoString(length=2), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=False),
    sa.Column('status', AutoString(length=20), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('licence_number')
    )
    with op.batch_alter_table('licensee', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licensee_bin'), ['bin'], unique=True)

    op.create_table('outbox_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', AutoString(length=100), nullable=False),
    sa.Column('path', AutoString(length=200), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.Column('failed_at', UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('outbox_item', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_pending', ['sent_at', 'id'], unique=False)

    op.create_table('violation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', AutoString(length=40), nullable=False),
    sa.Column('subject', AutoString(length=20), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('serial', AutoString(length=100), nullable=True),
    sa.Column('device_id', AutoString(length=100), nullable=True),
    sa.Column('status', AutoString(length=20), nullable=False),
    sa.Column('first_seen_at', UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', UTCDateTime(), nullable=False),
    sa.Column('resolved_at', UTCDateTime(), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('violation', schema=None) as batch_op:
        batch_op.create_index('ix_violation_open', ['status', 'kind', 'subject', 'subject_id'], unique=False)

    op.create_table('dpc',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', AutoString(length=200), nullable=False),
    sa.Column('address', AutoString(length=500), nullable=False),
    sa.Column('zone', AutoString(length=10), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('capacity_mw', sa.Float(), nullable=False),
    sa.Column('residential_zone_evidence', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['licensee.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('dpc', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dpc_operator_id'), ['operator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dpc_zone'), ['zone'], unique=False)

    op.create_table('hsc',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', AutoString(length=100), nullable=False),
    sa.Column('mac', AutoString(length=17), nullable=True),
    sa.Column('make', AutoString(length=50), nullable=True),
    sa.Column('model', AutoString(length=100), nullable=True),
    sa.Column('firmware', AutoString(length=200), nullable=True),
    sa.Column('nominal_ths', sa.Float(), nullable=True),
    sa.Column('rated_w', sa.Float(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('dpc_id', sa.Integer(), nullable=True),
    sa.Column('hall', AutoString(length=50), nullable=True),
    sa.Column('rack', AutoString(length=50), nullable=True),
    sa.Column('slot', AutoString(length=50), nullable=True),
    sa.Column('site', AutoString(length=100), nullable=True),
    sa.Column('gateway', AutoString(length=100), nullable=True),
    sa.Column('device_id', AutoString(length=100), nullable=True),
    sa.Column('ip', AutoString(length=45), nullable=True),
    sa.Column('pdu', AutoString(length=100), nullable=True),
    sa.Column('pdu_outlet', sa.Integer(), nullable=True),
    sa.Column('pools', sa.JSON(), nullable=False),
    sa.Column('status', AutoString(length=20), nullable=False),
    sa.Column('registry_number', AutoString(length=100), nullable=True),
    sa.Column('first_seen_at', UTCDateTime(), nullable=True),
    sa.Column('registered_at', UTCDateTime(), nullable=True),
    sa.Column('decommissioned_at', UTCDateTime(), nullable=True),
    sa.Column('missing_since', UTCDateTime(), nullable=True),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', UTCDateTime(), nullable=True),
    sa.Column('last_state', AutoString(length=20), nullable=True),
    sa.Column('last_power_w', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['dpc_id'], ['dpc.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['licensee.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('registry_number'),
    sa.UniqueConstraint('serial')
    )
    with op.batch_alter_table('hsc', schema=None) as batch_op:
        batch_op.create_index('ix_hsc_changed', ['changed_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_hsc_device_id'), ['device_id'], unique=False)
        batch_op.create_index('ix_hsc_dpc_changed', ['dpc_id', 'changed_at', 'id'], unique=False)
        batch_op.create_index('ix_hsc_model_changed', ['model', 'changed_at', 'id'], unique=False)
        batch_op.create_index('ix_hsc_owner_changed', ['owner_id', 'changed_at', 'id'], unique=False)
        batch_op.create_index('ix_hsc_status_changed', ['status', 'changed_at', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('hsc', schema=None) as batch_op:
        batch_op.drop_index('ix_hsc_status_changed')
        batch_op.drop_index('ix_hsc_owner_changed')
        batch_op.drop_index('ix_hsc_model_changed')
        batch_op.drop_index('ix_hsc_dpc_changed')
        batch_op.drop_index(batch_op.f('ix_hsc_device_id'))
        batch_op.drop_index('ix_hsc_changed')

    op.drop_table('hsc')
    with op.batch_alter_table('dpc', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dpc_zone'))
        batch_op.drop_index(batch_op.f('ix_dpc_operator_id'))

    op.drop_table('dpc')
    with op.batch_alter_table('violation', schema=None) as batch_op:
        batch_op.drop_index('ix_violation_open')

    op.drop_table('violation')
    with op.batch_alter_table('outbox_item', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending')

    op.drop_table('outbox_item')
    with op.batch_alter_table('licensee', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licensee_bin'))

    op.drop_table('licensee')
    op.drop_table('idempotency_record')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entity')

    op.drop_table('audit_event')
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_key_prefix'))

    op.drop_table('api_key')
    op.drop_table('accredited_pool')
