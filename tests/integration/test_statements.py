"""The mirror's hot writes on plain psycopg connections: errors, reuse, closing."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import sqlalchemy as sa

from tests.conftest import eventually
from workflowable import Catalog, build_worker
from workflowable.db.database import Database, Statements, create_engine, is_transient
from workflowable.worker import PARTITION_KEEPER

BACKENDS = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")


def named(database_url: str, name: str) -> str:
    return f"{database_url}{'&' if '?' in database_url else '?'}application_name={name}"


async def backends(client, name: str) -> int:
    async with client.engine.connect() as conn:
        return int(await conn.scalar(BACKENDS, {"name": name}))


async def all_closed(client, name: str) -> None:
    """A closed connection's backend leaves pg_stat_activity a moment later."""

    async def none_left() -> bool:
        return await backends(client, name) == 0

    await eventually(none_left, timeout=10)


async def test_a_statement_error_is_raised_as_is_and_the_connection_is_reused(client, database_url):
    statements = Statements(named(database_url, "wf-statements-reuse"), size=2)
    try:
        assert await statements.scalar(sa.text("SELECT CAST(:n AS int) + 1"), {"n": 41}) == 42
        with pytest.raises(psycopg.errors.DivisionByZero) as raised:
            await statements.scalar(sa.text("SELECT 1 / CAST(:n AS int)"), {"n": 0})
        assert not is_transient(raised.value)  # a bad statement is not retried as an outage
        rows = await statements.rows(sa.text("SELECT n, n * 2 AS twice FROM generate_series(1, 3) AS n"), {})
        assert [(row.n, row.twice) for row in rows] == [(1, 2), (2, 4), (3, 6)]
        assert await backends(client, "wf-statements-reuse") == 1  # one connection did all of it
    finally:
        await statements.close()
    await all_closed(client, "wf-statements-reuse")


async def test_an_idle_connection_the_server_dropped_is_replaced_before_use(client, database_url):
    statements = Statements(named(database_url, "wf-statements-drop"), size=2)
    try:
        pid = await statements.scalar(sa.text("SELECT pg_backend_pid()"), {})
        async with client.engine.connect() as conn:  # as a Postgres restart does to every connection
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await eventually(lambda: _gone(client, pid))
        assert await statements.scalar(sa.text("SELECT pg_backend_pid()"), {}) != pid  # no error: a new connection
    finally:
        await statements.close()


async def _gone(client, pid: int) -> bool:
    async with client.engine.connect() as conn:
        return not await conn.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})


async def test_a_connection_dropped_mid_statement_is_transient_and_replaced(client, database_url):
    statements = Statements(named(database_url, "wf-statements-mid"), size=1)
    try:
        pid = await statements.scalar(sa.text("SELECT pg_backend_pid()"), {})
        sleeping = asyncio.create_task(statements.scalar(sa.text("SELECT pg_sleep(30)"), {}))
        await eventually(lambda: _running(client, pid, "pg_sleep"))
        async with client.engine.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(psycopg.OperationalError) as raised:
            await asyncio.wait_for(sleeping, 10)
        assert is_transient(raised.value)  # the activities' writes retry on it
        assert await statements.scalar(sa.text("SELECT pg_backend_pid()"), {}) != pid  # a new connection
    finally:
        await statements.close()


async def _running(client, pid: int, text: str) -> bool:
    async with client.engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND query LIKE :text AND state = 'active'"
        return bool(await conn.scalar(sa.text(query), {"pid": pid, "text": f"%{text}%"}))


async def test_closing_a_database_closes_its_engine_and_its_statements(client, database_url):
    database = Database.open(named(database_url, "wf-database-close"), pool_size=2)
    await database.statements.scalar(sa.text("SELECT 1"), {})
    async with database.engine.connect() as conn:
        await conn.scalar(sa.text("SELECT 1"))
    assert await backends(client, "wf-database-close") == 2  # one of each, idle in their pools
    await database.close()
    await all_closed(client, "wf-database-close")


async def test_a_worker_on_a_borrowed_engine_closes_only_the_connections_it_opened(client, database_url):
    engine = create_engine(named(database_url, "wf-database-borrowed"))
    try:
        async with engine.connect() as conn:
            await conn.scalar(sa.text("SELECT 1"))
        worker = build_worker(client.temporal, engine, Catalog.of([]), task_queue="wf-database-borrowed")
        async with worker:
            await worker.database.statements.scalar(sa.text("SELECT 1"), {})
            assert await backends(client, "wf-database-borrowed") == 2  # the engine's and the worker's
        await eventually(lambda: _count_is(client, "wf-database-borrowed", 1))  # the engine's stays
    finally:
        await engine.dispose()
    await all_closed(client, "wf-database-borrowed")


async def test_a_worker_that_stops_at_once_gives_the_borrowed_engine_its_connection_back(client, database_url):
    """The worker's partition keeper makes its first pass on the engine as the worker starts. A
    stop during that pass lets it finish: cancelled mid-statement, it closed the owner's pooled
    connection a moment after the stop (one stop in two to eight, here)."""
    engine = create_engine(named(database_url, "wf-database-stopped"))

    async def backend() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text("SELECT pg_backend_pid()")))

    try:
        pooled = await backend()
        for attempt in range(3):
            async with build_worker(client.temporal, engine, Catalog.of([]), task_queue=f"wf-database-stopped-{attempt}"):
                pass
            assert not [task for task in asyncio.all_tasks() if task.get_name() == PARTITION_KEEPER]  # ended with the worker
            assert await backend() == pooled  # the same connection, back in the pool
    finally:
        await engine.dispose()
    await all_closed(client, "wf-database-stopped")


async def _count_is(client, name: str, count: int) -> bool:
    return await backends(client, name) == count
