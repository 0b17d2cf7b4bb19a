"""initial controller schema (history, quota)

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 14:31:04.149312

Exactly what `create_all` made before the controller had migrations (controller/history.py's tables and
controller/quota/models.py's). Databases made that way are stamped at this revision by
`controller.db.init_controller_db`; when only some of the tables are there (a controller run without the quota side),
that function runs this revision with `adopt_existing_tables` set and the tables already present are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _wanted(table: str) -> bool:
    """Create `table`, unless adopting a database made by create_all that has it already."""
    if not context.config.attributes.get("adopt_existing_tables"):
        return True
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _wanted('device_minute'):
        op.create_table('device_minute',
        sa.Column('site', sa.String(length=64), nullable=False),
        sa.Column('device_id', sa.String(length=128), nullable=False),
        sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('gateway', sa.String(length=64), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('samples', sa.Integer(), nullable=False),
        sa.Column('available_samples', sa.Integer(), nullable=False),
        sa.Column('power_w_sum', sa.Float(), nullable=False),
        sa.Column('power_samples', sa.Integer(), nullable=False),
        sa.Column('power_w_max', sa.Float(), nullable=True),
        sa.Column('hashrate_ths_sum', sa.Float(), nullable=False),
        sa.Column('hashrate_samples', sa.Integer(), nullable=False),
        sa.Column('temp_c_max', sa.Float(), nullable=True),
        sa.Column('energy_kwh', sa.Float(), nullable=False),
        sa.Column('gap_s', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'device_id', 'minute')
        )
        with op.batch_alter_table('device_minute', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_device_minute_minute'), ['minute'], unique=False)

    if _wanted('energy_day'):
        op.create_table('energy_day',
        sa.Column('site', sa.String(length=64), nullable=False),
        sa.Column('device_id', sa.String(length=128), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('energy_kwh', sa.Float(), nullable=False),
        sa.Column('gap_s', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'device_id', 'day', 'owner', 'source')
        )
        with op.batch_alter_table('energy_day', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_energy_day_day'), ['day'], unique=False)

    if _wanted('quota_dispatch'):
        op.create_table('quota_dispatch',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('ts', UTCDateTime(), nullable=False),
        sa.Column('action', AutoString(length=16), nullable=False),
        sa.Column('reason', AutoString(), nullable=False),
        sa.Column('limit_w', sa.Float(), nullable=False),
        sa.Column('measured_w', sa.Float(), nullable=False),
        sa.Column('budget_w', sa.Float(), nullable=False),
        sa.Column('planned_w', sa.Float(), nullable=False),
        sa.Column('machines', sa.Integer(), nullable=False),
        sa.Column('running', sa.Integer(), nullable=False),
        sa.Column('changed', sa.Integer(), nullable=False),
        sa.Column('gateways', sa.Integer(), nullable=False),
        sa.Column('commands_json', AutoString(), nullable=False),
        sa.Column('elapsed_ms', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('quota_dispatch', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_dispatch_site'), ['site'], unique=False)
            batch_op.create_index(batch_op.f('ix_quota_dispatch_ts'), ['ts'], unique=False)

    if _wanted('quota_emergency'):
        op.create_table('quota_emergency',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('area', AutoString(length=64), nullable=False),
        sa.Column('reference', AutoString(length=200), nullable=False),
        sa.Column('start', UTCDateTime(), nullable=False),
        sa.Column('end', UTCDateTime(), nullable=True),
        sa.Column('cap_mw', sa.Float(), nullable=True),
        sa.Column('share_pct', sa.Float(), nullable=True),
        sa.Column('lifted_at', UTCDateTime(), nullable=True),
        sa.Column('lifted_by', AutoString(length=200), nullable=True),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('source', AutoString(length=16), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('quota_emergency', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_emergency_site'), ['site'], unique=False)

    if _wanted('quota_excursion'):
        op.create_table('quota_excursion',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('start', UTCDateTime(), nullable=False),
        sa.Column('end', UTCDateTime(), nullable=False),
        sa.Column('peak_over_w', sa.Float(), nullable=False),
        sa.Column('excess_kwh', sa.Float(), nullable=False),
        sa.Column('excess_mw_s', sa.Float(), nullable=False),
        sa.Column('cause', AutoString(length=32), nullable=False),
        sa.Column('reason', AutoString(), nullable=False),
        sa.Column('reference', AutoString(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('quota_excursion', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_excursion_site'), ['site'], unique=False)
            batch_op.create_index(batch_op.f('ix_quota_excursion_start'), ['start'], unique=False)

    if _wanted('quota_grid_contract'):
        op.create_table('quota_grid_contract',
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('contract_mw', sa.Float(), nullable=False),
        sa.Column('stale_after_s', sa.Float(), nullable=False),
        sa.Column('safe_pct', sa.Float(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('source', AutoString(length=16), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('site')
        )

    if _wanted('quota_grid_message'):
        op.create_table('quota_grid_message',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('ts', UTCDateTime(), nullable=True),
        sa.Column('target_pct', sa.Float(), nullable=True),
        sa.Column('target_mw', sa.Float(), nullable=True),
        sa.Column('reference', AutoString(length=200), nullable=True),
        sa.Column('accepted', sa.Boolean(), nullable=False),
        sa.Column('error', AutoString(), nullable=True),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('source', AutoString(length=16), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('quota_grid_message', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_grid_message_received_at'), ['received_at'], unique=False)
            batch_op.create_index(batch_op.f('ix_quota_grid_message_site'), ['site'], unique=False)

    if _wanted('quota_input_log'):
        op.create_table('quota_input_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('kind', AutoString(length=32), nullable=False),
        sa.Column('action', AutoString(length=16), nullable=False),
        sa.Column('object_id', AutoString(length=64), nullable=True),
        sa.Column('detail', AutoString(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('source', AutoString(length=16), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('quota_input_log', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_input_log_site'), ['site'], unique=False)

    if _wanted('quota_ledger_minute'):
        op.create_table('quota_ledger_minute',
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('kind', AutoString(length=8), nullable=False),
        sa.Column('entity', AutoString(length=128), nullable=False),
        sa.Column('minute', UTCDateTime(), nullable=False),
        sa.Column('end', UTCDateTime(), nullable=False),
        sa.Column('allotted_kwh', sa.Float(), nullable=False),
        sa.Column('used_kwh', sa.Float(), nullable=False),
        sa.Column('power_w', sa.Float(), nullable=False),
        sa.Column('limit_w', sa.Float(), nullable=False),
        sa.Column('target_w', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'kind', 'entity', 'minute')
        )
        with op.batch_alter_table('quota_ledger_minute', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_ledger_minute_minute'), ['minute'], unique=False)

    if _wanted('quota_machine_rule'):
        op.create_table('quota_machine_rule',
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('device_id', AutoString(length=128), nullable=False),
        sa.Column('protected', sa.Boolean(), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'device_id')
        )

    if _wanted('quota_schedule'):
        op.create_table('quota_schedule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('area', AutoString(length=64), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('hours_json', AutoString(), nullable=False),
        sa.Column('reference', AutoString(length=200), nullable=True),
        sa.Column('replaced_by', sa.Integer(), nullable=True),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('source', AutoString(length=16), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('quota_schedule', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_schedule_day'), ['day'], unique=False)
            batch_op.create_index(batch_op.f('ix_quota_schedule_site'), ['site'], unique=False)

    if _wanted('quota_site_limits'):
        op.create_table('quota_site_limits',
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('connection_kw', sa.Float(), nullable=False),
        sa.Column('reserved_headroom_kw', sa.Float(), nullable=False),
        sa.Column('zone', AutoString(length=64), nullable=True),
        sa.Column('zone_share', sa.Float(), nullable=False),
        sa.Column('require_schedule', sa.Boolean(), nullable=False),
        sa.Column('lend_unused_share', sa.Boolean(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('source', AutoString(length=16), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('site')
        )

    if _wanted('quota_tenant_contract'):
        op.create_table('quota_tenant_contract',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('tenant', AutoString(length=128), nullable=False),
        sa.Column('share_pct', sa.Float(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('source', AutoString(length=16), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('site', 'tenant')
        )
        with op.batch_alter_table('quota_tenant_contract', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_tenant_contract_site'), ['site'], unique=False)

    if _wanted('site_minute'):
        op.create_table('site_minute',
        sa.Column('site', sa.String(length=64), nullable=False),
        sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('miners', sa.Integer(), nullable=False),
        sa.Column('miners_available', sa.Integer(), nullable=False),
        sa.Column('power_w', sa.Float(), nullable=False),
        sa.Column('hashrate_ths', sa.Float(), nullable=False),
        sa.Column('energy_kwh', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'minute', 'source')
        )
        with op.batch_alter_table('site_minute', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_site_minute_minute'), ['minute'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('site_minute', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_minute_minute'))

    op.drop_table('site_minute')
    with op.batch_alter_table('quota_tenant_contract', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_tenant_contract_site'))

    op.drop_table('quota_tenant_contract')
    op.drop_table('quota_site_limits')
    with op.batch_alter_table('quota_schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_schedule_site'))
        batch_op.drop_index(batch_op.f('ix_quota_schedule_day'))

    op.drop_table('quota_schedule')
    op.drop_table('quota_machine_rule')
    with op.batch_alter_table('quota_ledger_minute', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_ledger_minute_minute'))

    op.drop_table('quota_ledger_minute')
    with op.batch_alter_table('quota_input_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_input_log_site'))

    op.drop_table('quota_input_log')
    with op.batch_alter_table('quota_grid_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_grid_message_site'))
        batch_op.drop_index(batch_op.f('ix_quota_grid_message_received_at'))

    op.drop_table('quota_grid_message')
    op.drop_table('quota_grid_contract')
    with op.batch_alter_table('quota_excursion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_excursion_start'))
        batch_op.drop_index(batch_op.f('ix_quota_excursion_site'))

    op.drop_table('quota_excursion')
    with op.batch_alter_table('quota_emergency', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_emergency_site'))

    op.drop_table('quota_emergency')
    with op.batch_alter_table('quota_dispatch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quota_dispatch_ts'))
        batch_op.drop_index(batch_op.f('ix_quota_dispatch_site'))

    op.drop_table('quota_dispatch')
    with op.batch_alter_table('energy_day', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_energy_day_day'))

    op.drop_table('energy_day')
    with op.batch_alter_table('device_minute', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_minute_minute'))

    op.drop_table('device_minute')
