"""heartbeat.reported_by: the key that sent a machine's last sighting (every write records its actor)

Revision ID: 0004
Revises: 0003

Nullable: heartbeats stored before this revision do not know their key; the next sighting of each fills it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('heartbeat', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reported_by', AutoString(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('heartbeat', schema=None) as batch_op:
        batch_op.drop_column('reported_by')
