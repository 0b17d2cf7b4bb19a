"""the national registry: DPC codes, registrations, applications, allowances, heartbeats, violation episodes, feed

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:24:12.042491
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('allowance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', AutoString(length=100), nullable=False),
    sa.Column('dpc_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', UTCDateTime(), nullable=False),
    sa.Column('ends_at', UTCDateTime(), nullable=False),
    sa.Column('reason', AutoString(length=500), nullable=False),
    sa.Column('granted_by', AutoString(length=200), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['dpc_id'], ['dpc.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('allowance', schema=None) as batch_op:
        batch_op.create_index('ix_allowance_serial', ['serial', 'dpc_id'], unique=False)

    op.create_table('application',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', AutoString(length=20), nullable=False),
    sa.Column('serial', AutoString(length=100), nullable=False),
    sa.Column('dpc_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('reason', AutoString(length=500), nullable=True),
    sa.Column('submitted_by', AutoString(length=200), nullable=False),
    sa.Column('submitted_at', UTCDateTime(), nullable=False),
    sa.Column('status', AutoString(length=20), nullable=False),
    sa.Column('decided_at', UTCDateTime(), nullable=True),
    sa.Column('decided_by', AutoString(length=200), nullable=True),
    sa.Column('decision_reason', AutoString(length=500), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['dpc_id'], ['dpc.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['licensee.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.create_index('ix_application_dpc', ['dpc_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_application_serial'), ['serial'], unique=False)
        batch_op.create_index('ix_application_status', ['status', 'id'], unique=False)

    op.create_table('feed_entry',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('dpc_id', sa.Integer(), nullable=True),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['dpc_id'], ['dpc.id'], ),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('feed_entry', schema=None) as batch_op:
        batch_op.create_index('ix_feed_dpc_seq', ['dpc_id', 'seq'], unique=False)

    op.create_table('heartbeat',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dpc_id', sa.Integer(), nullable=False),
    sa.Column('identity', AutoString(length=120), nullable=False),
    sa.Column('serial', AutoString(length=100), nullable=True),
    sa.Column('mac', AutoString(length=17), nullable=True),
    sa.Column('site', AutoString(length=100), nullable=False),
    sa.Column('hashing', sa.Boolean(), nullable=False),
    sa.Column('state', AutoString(length=20), nullable=False),
    sa.Column('power_w', sa.Float(), nullable=True),
    sa.Column('hashrate_ths', sa.Float(), nullable=True),
    sa.Column('pools', sa.JSON(), nullable=False),
    sa.Column('placement', sa.JSON(), nullable=False),
    sa.Column('make', AutoString(length=50), nullable=True),
    sa.Column('model', AutoString(length=100), nullable=True),
    sa.Column('firmware', AutoString(length=200), nullable=True),
    sa.Column('first_seen_at', UTCDateTime(), nullable=False),
    sa.Column('seen_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['dpc_id'], ['dpc.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dpc_id', 'identity', name='uq_heartbeat_identity')
    )
    with op.batch_alter_table('heartbeat', schema=None) as batch_op:
        batch_op.create_index('ix_heartbeat_mac', ['mac', 'seen_at'], unique=False)
        batch_op.create_index('ix_heartbeat_serial', ['serial', 'seen_at'], unique=False)

    op.create_table('registration',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', AutoString(length=100), nullable=False),
    sa.Column('mac', AutoString(length=17), nullable=True),
    sa.Column('make', AutoString(length=50), nullable=True),
    sa.Column('model', AutoString(length=100), nullable=True),
    sa.Column('firmware', AutoString(length=200), nullable=True),
    sa.Column('nominal_ths', sa.Float(), nullable=True),
    sa.Column('rated_w', sa.Float(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('dpc_id', sa.Integer(), nullable=False),
    sa.Column('placement', sa.JSON(), nullable=False),
    sa.Column('status', AutoString(length=20), nullable=False),
    sa.Column('registry_number', AutoString(length=100), nullable=True),
    sa.Column('reason', AutoString(length=500), nullable=True),
    sa.Column('decided_at', UTCDateTime(), nullable=True),
    sa.Column('decided_by', AutoString(length=200), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('changed_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['dpc_id'], ['dpc.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['licensee.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('registry_number'),
    sa.UniqueConstraint('serial')
    )
    with op.batch_alter_table('registration', schema=None) as batch_op:
        batch_op.create_index('ix_registration_changed', ['changed_at', 'id'], unique=False)
        batch_op.create_index('ix_registration_dpc_status', ['dpc_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_registration_mac'), ['mac'], unique=False)
        batch_op.create_index(batch_op.f('ix_registration_owner_id'), ['owner_id'], unique=False)

    op.create_table('violation_episode',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', AutoString(length=40), nullable=False),
    sa.Column('dpc_id', sa.Integer(), nullable=False),
    sa.Column('identity', AutoString(length=120), nullable=False),
    sa.Column('serial', AutoString(length=100), nullable=True),
    sa.Column('mac', AutoString(length=17), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('other_dpc_id', sa.Integer(), nullable=True),
    sa.Column('started_at', UTCDateTime(), nullable=False),
    sa.Column('last_hashing_at', UTCDateTime(), nullable=False),
    sa.Column('ended_at', UTCDateTime(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('energy_wh', sa.Float(), nullable=False),
    sa.Column('max_power_w', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['dpc_id'], ['dpc.id'], ),
    sa.ForeignKeyConstraint(['other_dpc_id'], ['dpc.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('violation_episode', schema=None) as batch_op:
        batch_op.create_index('ix_episode_open', ['dpc_id', 'identity', 'kind', 'ended_at'], unique=False)
        batch_op.create_index('ix_episode_started', ['started_at', 'id'], unique=False)

    with op.batch_alter_table('dpc', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', AutoString(length=20), nullable=True))
        batch_op.create_unique_constraint('uq_dpc_code', ['code'])



def downgrade() -> None:
    with op.batch_alter_table('dpc', schema=None) as batch_op:
        batch_op.drop_constraint('uq_dpc_code', type_='unique')
        batch_op.drop_column('code')

    with op.batch_alter_table('violation_episode', schema=None) as batch_op:
        batch_op.drop_index('ix_episode_started')
        batch_op.drop_index('ix_episode_open')

    op.drop_table('violation_episode')
    with op.batch_alter_table('registration', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registration_owner_id'))
        batch_op.drop_index(batch_op.f('ix_registration_mac'))
        batch_op.drop_index('ix_registration_dpc_status')
        batch_op.drop_index('ix_registration_changed')

    op.drop_table('registration')
    with op.batch_alter_table('heartbeat', schema=None) as batch_op:
        batch_op.drop_index('ix_heartbeat_serial')
        batch_op.drop_index('ix_heartbeat_mac')

    op.drop_table('heartbeat')
    with op.batch_alter_table('feed_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_feed_dpc_seq')

    op.drop_table('feed_entry')
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_index('ix_application_status')
        batch_op.drop_index(batch_op.f('ix_application_serial'))
        batch_op.drop_index('ix_application_dpc')

    op.drop_table('application')
    with op.batch_alter_table('allowance', schema=None) as batch_op:
        batch_op.drop_index('ix_allowance_serial')

    op.drop_table('allowance')
