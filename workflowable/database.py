"""The mirror's connection: URL resolution, the async engine, migrations."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import DatabaseNotConfigured
from .settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Any Postgres URL, as SQLAlchemy's psycopg 3 dialect wants it."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise DatabaseNotConfigured(f"not a Postgres URL: {sa.engine.make_url(url).render_as_string(hide_password=True)}")


def database_url(settings: Settings) -> str:
    """The configured URL or, when none is set, the embedded Postgres under the state folder."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from .devstack import EmbeddedPostgres  # only the dev stack needs it

    return EmbeddedPostgres(settings.state_dir).start()


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(sqlalchemy_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations up to `revision`."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = sqlalchemy_url(url)
    command.upgrade(config, revision)
