"""The mirror's connection: URL resolution, the async engine, migrations."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import DatabaseNotConfigured, WorkflowableError
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


def create_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping`: test each pooled connection before use, so that a call after a Postgres
    restart does not fail once. A worker's engine goes without (a round trip per transaction):
    its writes retry on a dropped connection anyway."""
    return create_async_engine(sqlalchemy_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping)


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is about reaching Postgres (down, restarting, a dropped
    connection), so that the same statement may succeed later."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError | OSError)


def upgrade(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations up to `revision`."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = sqlalchemy_url(url)
    command.upgrade(config, revision)


def grant_reporting(url: str, role: str, *, password: str | None = None) -> bool:
    """Give `role` read access to the mirror's tables and views, and nothing else: USAGE on the
    schema, SELECT on every table and view (and on those created later). Creates the role (able
    to log in, with `password`) if it does not exist; returns whether it did."""
    import psycopg
    from psycopg import sql

    if not role or len(role) > 63:
        raise WorkflowableError(f"a Postgres role name is 1 to 63 characters, got {role!r}")
    plain_url = sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain_url, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None
        name = sql.Identifier(role)
        with conn.transaction():
            if not exists:
                if password is None:
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(name))
                else:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(name, sql.Literal(password)))
            for statement in (
                "GRANT USAGE ON SCHEMA {schema} TO {role}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
            ):
                conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema), role=name))
    return not exists
