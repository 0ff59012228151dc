"""Initial schema: sources, items (unique url key), item_sources, item_labels.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("config_url", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("link", sa.Text),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("last_polled_at", sa.DateTime),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_check_at", sa.DateTime),
        sa.Column("body_hash", sa.String(64)),
        sa.Column("moved_to", sa.Text),
        sa.Column("moved_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", sa.DateTime),
    )
    op.create_index("ix_sources_due", "sources", ["next_check_at"])
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url_key", sa.Text, nullable=False, unique=True),
        sa.Column("entry_id", sa.Text, nullable=False),
        sa.Column("slug", sa.Text, nullable=False),
        sa.Column("archive_path", sa.Text, nullable=False, unique=True),
        sa.Column("post_path", sa.Text, nullable=False, unique=True),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id", ondelete="SET NULL")),
        sa.Column("url", sa.Text),
        sa.Column("guid", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("authors", sa.Text, nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.Column("published_offset", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_offset", sa.Integer, nullable=False),
        sa.Column("first_seen_at", sa.DateTime, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.Column("published_revision", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_items_published", "items", ["published_at", "id"])
    op.create_index("ix_items_unpublished", "items", ["revision", "published_revision"])
    op.create_table(
        "item_sources",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_at", sa.DateTime, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_item_sources_source", "item_sources", ["source_id"])
    op.create_table(
        "item_labels",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_item_labels_value", "item_labels", ["kind", "value"])


def downgrade() -> None:
    op.drop_table("item_labels")
    op.drop_table("item_sources")
    op.drop_table("items")
    op.drop_table("sources")
