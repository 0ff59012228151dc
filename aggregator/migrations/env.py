"""Alembic environment: runs on the connection the store hands over, or on -x url=... from the CLI."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

connection = context.config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, render_as_batch=True)
    context.run_migrations()
else:
    arguments = context.get_x_argument(as_dictionary=True)
    url = arguments.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with: alembic -x url=sqlite:///path/to.db upgrade head")
    engine = create_engine(url)
    with engine.begin() as own_connection:
        context.configure(connection=own_connection, render_as_batch=True)
        context.run_migrations()
