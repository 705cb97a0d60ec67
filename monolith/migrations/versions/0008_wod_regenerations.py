"""How many times a day's served WOD was replaced (premium regenerations, CoachService
RegenerateWod): `served_wods.regenerations`, which also versions the WOD for ReplaceWod and
ExtendWod.

Additive: NOT NULL with a server default of 0, so existing rows read 0 and the previous release,
which never writes the column, keeps running against this schema during a rolling deploy.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "served_wods",
        sa.Column("regenerations", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("served_wods") as batch:
        batch.drop_column("regenerations")
