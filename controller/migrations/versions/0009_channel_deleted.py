"""alert_channel.deleted_at: a deleted alert channel keeps its row, naming who deleted it (every write records its
actor; the alert rules were kept the same way already)

Revision ID: 0009_channel_deleted
Revises: 0008_lease

A column only; kept if a create_all of the current models made it already.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import UTCDateTime

revision: str = '0009_channel_deleted'
down_revision: str | None = '0008_lease'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns('alert_channel')}


def upgrade() -> None:
    if 'deleted_at' in _columns():
        return
    with op.batch_alter_table('alert_channel', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alert_channel', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
