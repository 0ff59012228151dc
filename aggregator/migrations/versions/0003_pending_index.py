"""A partial index of the ids of the items not yet published, for every publish to find them.

ix_items_unpublished (revision, published_revision) served no query: finding the items with
`revision != published_revision` scanned the whole table in ix_items_published's order, on
every publish after a poll (64 ms for 524 of 52,000 items, growing with the archive; 3 ms
through this index, which holds only the items waiting). It is keyed by id, so new items are
appended to it, as they were to the index it replaces.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

_PENDING = sa.text("revision != published_revision")


def upgrade() -> None:
    op.drop_index("ix_items_unpublished", table_name="items")
    op.create_index(
        "ix_items_pending",
        "items",
        ["id"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_items_pending", table_name="items")
    op.create_index("ix_items_unpublished", "items", ["revision", "published_revision"])
