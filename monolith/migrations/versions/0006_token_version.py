"""A per-user token version, so a logout or a password change revokes earlier tokens.

Tokens carry the version they were issued with (`tv`); the services refuse tokens whose version
is lower than the user's current one. Existing rows start at 0, which is also what a token
issued before this migration (without `tv`) counts as, so such tokens stay valid until they
expire or the user logs out or changes the password.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_version", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    op.drop_column("users", "token_version")
