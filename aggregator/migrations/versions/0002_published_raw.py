"""items.published_raw: the publisher's date when it was set aside (in the future).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("published_raw", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("published_raw")
