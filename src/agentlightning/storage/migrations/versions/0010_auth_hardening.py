"""Immediate revocation of a user's access tokens: ``users.tokens_valid_after``.

An access token issued (``iat``) before this instant is refused. A role or password change, a
disabled account and a detected refresh-token reuse move it to "now", which revokes every access
token the user holds at once, without listing them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("tokens_valid_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("tokens_valid_after")
