"""Alembic environment. Migrations run programmatically (``server.storage.migrate``) with a
connection handed over in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from server.storage.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the alembic CLI is not how migrations are run here
    raise RuntimeError("run migrations through `vnegov migrate` or server.storage.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
