"""Alembic environment: the URL comes from `workflowable.db.database.upgrade`, never from a file."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from workflowable.db.models import SQLModel

config = context.config
url = str(config.attributes.get("url") or config.get_main_option("sqlalchemy.url"))
engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=SQLModel.metadata)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
