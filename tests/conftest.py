"""Real servers, once per test session: a Temporal dev server and a Postgres, on free ports.

Set WORKFLOWABLE_DATABASE_URL and/or WORKFLOWABLE_TEMPORAL_ADDRESS to run against servers of
your own instead. Each test runs its own worker on a unique task queue.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from workflowable import Catalog, Settings, Workflowable, build_worker
from workflowable.connection import connect_temporal
from workflowable.db.database import Database, plain_url, upgrade
from workflowable.ops.devstack import EmbeddedPostgres, TemporalDevServer


@pytest.fixture(scope="session")
def state_dir() -> Iterable[Path]:
    with tempfile.TemporaryDirectory(prefix="workflowable-tests-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def database_url(state_dir: Path) -> Iterable[str]:
    configured = Settings().database_url
    if configured is not None:
        url = configured.get_secret_value()
        upgrade(url)
        yield url
        return
    postgres = EmbeddedPostgres(state_dir, delete_on_stop=True)
    url = postgres.start()
    try:
        upgrade(url)
        yield url
    finally:
        postgres.stop()


@pytest.fixture(scope="session")
async def temporal_address() -> AsyncIterator[str]:
    configured = Settings().temporal_address
    if configured is not None:
        yield configured
        return
    server = TemporalDevServer(headless=True)
    try:
        yield await server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def settings(database_url: str, temporal_address: str, state_dir: Path) -> Settings:
    return Settings(database_url=database_url, temporal_address=temporal_address, state_dir=state_dir)


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[Workflowable]:
    async with await Workflowable.connect(settings) as client:
        yield client


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def serving(settings: Settings, types: Iterable[type], *, task_queue: str, **options: Any) -> AsyncIterator[None]:
    """A worker for `types` on `task_queue`, with its own connections and Temporal client, stopped after."""
    database = Database.open(settings.database_url.get_secret_value(), worker=True)  # type: ignore[union-attr]
    temporal = await connect_temporal(settings)
    try:
        async with build_worker(temporal, database, Catalog.of(types), task_queue=task_queue, **options):
            yield
    finally:
        await database.close()


@pytest.fixture
def run_worker(settings: Settings):
    """`async with run_worker(types, task_queue=..., **options)`: `serving` with the session's settings."""
    return functools.partial(serving, settings)


@contextlib.contextmanager
def database_of_its_own(database_url: str, prefix: str, *, far_ids: bool = False, migrated: bool = True) -> Iterable[str]:
    """The URL of a new, migrated database on the session's server, dropped afterwards: for a
    test that fills tables or snapshots them whole, away from the others (`migrated=False`: an
    empty one). `far_ids`: its process
    ids start at a random point past 10^12, for a test that starts workflows on the session's
    Temporal server, whose ids (`workflow-process-<id>`) must not meet those of the session's
    database or of another database of its own."""
    import psycopg
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server = sa.engine.make_url(database_url)
    own = server.set(database=name).render_as_string(hide_password=False)
    plain = plain_url(server.render_as_string(hide_password=False))
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        if migrated:
            upgrade(own)
        if far_ids:
            with psycopg.connect(plain_url(own)) as conn:
                conn.execute("SELECT setval('workflow_processes_id_seq', %s)", (10**12 + uuid.uuid4().int % 10**11 * 10**4,))
        yield own
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')



@contextlib.asynccontextmanager
async def opened_database_of_its_own(database_url: str, prefix: str) -> AsyncIterator[tuple[str, Database]]:
    """`database_of_its_own`, opened: its URL and a `Database` on it, closed before it is dropped."""
    with database_of_its_own(database_url, prefix) as url:
        database = Database.open(url)
        try:
            yield url, database
        finally:
            await database.close()

def one_workflow(event: str) -> str:
    """The start of a statement that fills a database of its own by SQL: CTEs `event`,
    `activity_type`, `priority`, an Active `workflow` named after the event in lower case, and its
    one `activity`; the statement goes on with `, made AS (...)`."""
    return f"""
WITH event AS (
    INSERT INTO workflow_events (name, class_name) VALUES ('{event}', 'tests.{event}') RETURNING id
), activity_type AS (
    INSERT INTO workflow_activity_types (name, class_name) VALUES ('Step', 'tests.Step') RETURNING id
), priority AS (
    INSERT INTO workflow_priorities (name, priority) VALUES ('p', 0) RETURNING id
), workflow AS (
    INSERT INTO workflows (name, workflow_event_id, workflow_status_id, workflow_priority_id, retry_interval)
    SELECT '{event.lower()}', event.id, 2, priority.id, 60 FROM event, priority RETURNING id
), activity AS (
    INSERT INTO workflow_activities (workflow_id, workflow_activity_type_id, name)
    SELECT workflow.id, activity_type.id, 'step' FROM workflow, activity_type RETURNING id, workflow_id
)"""


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def snapshot(engine) -> dict[str, list[str]]:
    """Every row of every table (as JSON text, sorted) and where every sequence stands: equal
    snapshots mean the database did not change, not even by an id drawn and rolled back."""
    import sqlalchemy as sa

    async with engine.connect() as conn:
        # Tables, partitioned ones included, but not their partitions (the table shows their rows).
        names = (
            await conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relnamespace = CAST(current_schema() AS regnamespace) "
                    "AND relkind IN ('r', 'p') AND NOT relispartition ORDER BY 1"
                )
            )
        ).scalars().all()
        snap = {name: sorted((await conn.execute(sa.text(f'SELECT to_jsonb(t)::text FROM "{name}" t'))).scalars().all()) for name in names}
        sequences = await conn.execute(
            sa.text("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = current_schema() ORDER BY 1")
        )
        snap["(sequences)"] = [f"{name}={value}" for name, value in sequences]
    return snap


async def eventually(check, *, timeout: float = 20.0, interval: float = 0.05):
    """Poll `await check()` until it returns something truthy; fail after `timeout` seconds."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check.__qualname__}, last {result!r}")
        await asyncio.sleep(interval)
