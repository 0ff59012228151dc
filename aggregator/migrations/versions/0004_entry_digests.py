"""The digests of the entries of each source's last stored body (sources.entry_digests).

A changed body mostly repeats the entries of the one before; with their digests known, a
poll builds, moves between processes and stores only the new ones (see KnownEntries).
NULL until a source's next changed body: then every entry is read as before, once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("entry_digests", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("entry_digests")
