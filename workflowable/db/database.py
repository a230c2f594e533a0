"""The mirror's one door to Postgres: `Database` (the engine and the hot statements' connections,
closed together), URL resolution, connecting with retry, migrations."""

from __future__ import annotations

import asyncio
import select
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import DatabaseNotConfigured, InvalidArgument

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Any Postgres URL, as SQLAlchemy's psycopg 3 dialect wants it."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise DatabaseNotConfigured(f"not a Postgres URL: {sa.engine.make_url(url).render_as_string(hide_password=True)}")


#: How long opening a connection keeps trying while Postgres cannot be reached (down, restarting,
#: still starting up) before the call that needed it fails with `DatabaseUnavailable`. Under the
#: activities' 10 s heartbeat timeout, for a worker that shares a caller's engine.
CONNECT_WITHIN = 5.0


def create_engine(url: str, *, pool_size: int = 10, worker: bool = False) -> AsyncEngine:
    """A SQLAlchemy engine for the mirror. A caller's engine tests each pooled connection before
    use (so that a call after a Postgres restart does not fail once) and keeps trying a new
    connection for CONNECT_WITHIN seconds. A worker's engine (`worker=True`) does neither: its
    writes retry on their own, heartbeating between tries, and a connect that kept trying would
    hold up an activity's heartbeats."""
    url = sqlalchemy_url(url)
    conninfo = plain_url(url)
    within = 0.0 if worker else CONNECT_WITHIN
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=not worker,
        async_creator=lambda: connect_with_retry(conninfo, within=within),
    )


def plain_url(url: str) -> str:
    """The URL as libpq (psycopg itself) wants it."""
    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


async def connect_with_retry(conninfo: str, *, within: float = CONNECT_WITHIN, **options: Any) -> psycopg.AsyncConnection[Any]:
    """A new connection, tried again with a growing pause for `within` seconds while Postgres
    cannot be reached. Nothing has been sent on a connection that failed to open, so trying
    again is always safe; a refusal (a wrong password, an unknown database) is not retried."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause = 0.1
    while True:
        try:
            return await psycopg.AsyncConnection.connect(conninfo, **options)
        except psycopg.OperationalError as exc:
            if not _unreachable(exc) or loop.time() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)


def _unreachable(exc: psycopg.OperationalError) -> bool:
    """No answer (refused, reset: no SQLSTATE), or an answer that says "later": the server is
    starting up, shutting down or restarting (class 57P)."""
    return exc.sqlstate is None or exc.sqlstate.startswith("57P")


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is about reaching Postgres (down, restarting, a dropped
    connection), so that the same statement may succeed later."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError | OSError | _LOST)


def _still_open(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection is still usable, without a round trip. An idle connection
    has nothing to read unless the server has closed it or said goodbye (a restart, an
    administrator's termination): then its socket is readable."""
    if conn.closed or conn.broken:
        return False
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return not readable


#: psycopg's own errors for a connection that is gone (raised by `Statements`, unwrapped).
_LOST = psycopg.OperationalError | psycopg.InterfaceError


class Statements:
    """The mirror's hot writes, each one statement in autocommit, on plain psycopg connections.

    SQLAlchemy's async engine spends about 0.45 ms of Python on each statement (the greenlet,
    the pool checkout and reset, the transaction); an attempt makes two writes, so on a busy
    worker that was a noticeable share of its CPU (docs/performance.md). Statements are the
    same `sa.text` ones, compiled once to psycopg's parameter style. A connection that fails or
    is interrupted mid-statement is closed, not reused."""

    def __init__(self, url: str, size: int, *, connect_within: float = CONNECT_WITHIN) -> None:
        self._conninfo = plain_url(url)
        self._connect_within = connect_within
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)
        self._compiled: dict[sa.TextClause, str] = {}
        self._closed = False

    def _sql(self, statement: sa.TextClause) -> str:
        compiled = self._compiled.get(statement)
        if compiled is None:
            compiled = self._compiled[statement] = str(statement.compile(dialect=psycopg_dialect.dialect()))
        return compiled

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._slots:
            conn = await self._idle_or_new()
            try:
                yield conn
            except psycopg.DatabaseError as exc:
                await self._give_back(conn, reusable=not isinstance(exc, _LOST))  # a statement error: it is fine
                raise
            except BaseException:  # cancelled or interrupted mid-statement: its state is unknown
                await conn.close()
                raise
            await self._give_back(conn, reusable=True)

    async def _idle_or_new(self) -> psycopg.AsyncConnection[Any]:
        while self._idle:
            conn = self._idle.pop()
            if _still_open(conn):
                return conn
            await conn.close()
        return await connect_with_retry(self._conninfo, within=self._connect_within, autocommit=True, row_factory=namedtuple_row)

    async def _give_back(self, conn: psycopg.AsyncConnection[Any], *, reusable: bool) -> None:
        if reusable and not conn.closed and not self._closed:
            self._idle.append(conn)
        else:
            await conn.close()

    async def rows(self, statement: sa.TextClause, params: Mapping[str, Any]) -> list[Any]:
        async with self._connection() as conn:
            cursor = await conn.execute(self._sql(statement), params)
            return await cursor.fetchall() if cursor.description is not None else []

    async def scalar(self, statement: sa.TextClause, params: Mapping[str, Any]) -> Any:
        rows = await self.rows(statement, params)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


class Database:
    """The mirror's connections: `engine` (SQLAlchemy: transactions, reads, the catalog) and
    `statements` (plain psycopg connections for the hot writes, as many as the engine's pool).
    `close()` closes both. `Database.open(url)` makes both; `Database.around(engine)` borrows an
    engine made elsewhere and opens only its own statement connections, which `close()` closes
    (the engine stays its owner's)."""

    def __init__(self, engine: AsyncEngine, statements: Statements, *, owns_engine: bool) -> None:
        self.engine = engine
        self.statements = statements
        self._owns_engine = owns_engine

    @classmethod
    def open(cls, url: str, *, pool_size: int = 10, worker: bool = False) -> Database:
        """Connections to the database at `url` (opened on first use). `worker`: see `create_engine`."""
        engine = create_engine(url, pool_size=pool_size, worker=worker)
        statements = Statements(url, pool_size, connect_within=0.0 if worker else CONNECT_WITHIN)
        return cls(engine, statements, owns_engine=True)

    @classmethod
    def around(cls, engine: AsyncEngine) -> Database:
        pool = engine.sync_engine.pool
        pool_size = pool.size() if isinstance(pool, sa.pool.QueuePool) else 10
        statements = Statements(engine.url.render_as_string(hide_password=False), pool_size)
        return cls(engine, statements, owns_engine=False)

    async def close(self) -> None:
        await self.statements.close()
        if self._owns_engine:
            await self.engine.dispose()


@dataclass(frozen=True)
class ServerState:
    """What `workflowable check` asks of Postgres."""

    version: str  #: the server's version
    revision: str | None  #: the schema's migration revision (None: never upgraded)
    now: datetime  #: the server's clock


async def server_state(conn: AsyncConnection) -> ServerState:
    version = await conn.scalar(sa.text("SHOW server_version"))
    has_alembic = await conn.scalar(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    revision = await conn.scalar(sa.text("SELECT version_num FROM alembic_version")) if has_alembic else None
    return ServerState(str(version), revision, await conn.scalar(sa.text("SELECT now()")))


def upgrade(url: str, revision: str = "head") -> str:
    """Run the Alembic migrations up to `revision`; the revision the database is at now."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = sqlalchemy_url(url)
    command.upgrade(config, revision)
    with psycopg.connect(plain_url(url)) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else "base"


def grant_reporting(url: str, role: str, *, password: str | None = None) -> bool:
    """Give `role` read access to the mirror's tables and views, and nothing else: USAGE on the
    schema, SELECT on every table and view (and on those created later). Creates the role (able
    to log in, with `password`) if it does not exist; returns whether it did."""
    import psycopg
    from psycopg import sql

    if not role or len(role) > 63:
        raise InvalidArgument(f"a Postgres role name is 1 to 63 characters, got {role!r}")
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
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
