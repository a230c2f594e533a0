"""`prune`: the attempt log's partitions older than the cutoff are dropped (but for one with an
attempt still open), without holding up writers; then finished processes that ended before the
cutoff go, with every row of theirs; live ones and recent ones stay. In databases of their own,
filled by SQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from pydantic import SecretStr

from tests.conftest import one_workflow, opened_database_of_its_own
from workflowable import InvalidArgument, Workflowable
from workflowable.db.database import Database
from workflowable.db.partitions import (
    DETACHED_MARK,
    MONTHS_AHEAD,
    ensure_partitions,
    list_partitions,
    month_name,
    month_start,
    next_month,
)

FILL = one_workflow("Old") + """, made AS (
    -- (status, ended days ago): old Completed, old Failed, old Cancelled, recent Completed, old Running, old Pending
    INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue, completed_at, updated_at, created_at)
    SELECT activity.workflow_id, s.status, 'q',
           CASE WHEN s.status = 7 THEN now() - s.days * interval '1 day' END,
           now() - s.days * interval '1 day', now() - 400 * interval '1 day'
    FROM activity, (VALUES (1, 7, 100), (2, 6, 100), (3, 8, 100), (4, 7, 1), (5, 4, 100), (6, 2, 100)) AS s(n, status, days)
    ORDER BY s.n
    RETURNING id, updated_at
), logs AS (  -- each process's one attempt when it last changed
    INSERT INTO workflow_process_activity_logs
        (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
    SELECT made.id, activity.id, 2, made.updated_at, made.updated_at, 1, 1, 'run' FROM made, activity
), inputs AS (
    INSERT INTO workflow_process_tokens (workflow_process_id, key, value) SELECT made.id, 'k', 'v' FROM made
)
INSERT INTO workflow_process_evaluations (workflow_process_id, cause, details) SELECT made.id, 'woken', '[]' FROM made
"""


async def counts(engine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            table: int(await conn.scalar(sa.text(f"SELECT count(*) FROM {table}")))
            for table in ("workflow_processes", "workflow_process_activity_logs", "workflow_process_tokens", "workflow_process_evaluations")
        }


async def test_prune_deletes_old_finished_processes_and_their_rows_only(client, settings, database_url):
    async with of_its_own(settings, database_url, "prune", client.temporal) as (database, own):
        await ensure_partitions(database.engine, since=datetime.now(UTC) - timedelta(days=101))
        async with database.engine.begin() as conn:
            await conn.execute(sa.text(FILL))
        counted = await own.prune(timedelta(days=30), dry_run=True)
        assert counted.found == 3
        assert any(p.start <= datetime.now(UTC) - timedelta(days=100) < p.end for p in counted.partitions)
        assert all(p.end <= counted.before for p in counted.partitions)
        assert await counts(database.engine) == dict.fromkeys(await counts(database.engine), 6), "a dry run deletes nothing"
        told: list[int] = []
        result = await own.prune(timedelta(days=30), batch=1, progress=told.append)
        assert (result.found, result.deleted, told) == (3, 3, [1, 1, 1])
        assert [p.name for p in result.partitions] == [p.name for p in counted.partitions]
        async with database.engine.connect() as conn:
            left = sorted((await conn.execute(sa.text("SELECT workflow_process_status_id FROM workflow_processes"))).scalars())
        assert left == [2, 4, 7], "live processes, however old, and the recent Completed one stay"
        # Their rows went with them; the live ones' attempts went with their month.
        assert await counts(database.engine) == {
            "workflow_processes": 3, "workflow_process_activity_logs": 1, "workflow_process_tokens": 3, "workflow_process_evaluations": 3
        }
        assert (await own.prune(timedelta(days=30))).deleted == 0, "a second run finds nothing"
        for bad in (timedelta(0), 30):
            try:
                await own.prune(bad)  # type: ignore[arg-type]
            except InvalidArgument:
                continue
            raise AssertionError(f"prune({bad!r}) was accepted")


@asynccontextmanager
async def of_its_own(settings, database_url: str, prefix: str, temporal=None) -> AsyncIterator[tuple[Database, Workflowable]]:
    """A database of its own, open, and a client on it (with no Temporal unless given)."""
    async with opened_database_of_its_own(database_url, prefix) as (url, database):
        yield database, Workflowable(settings.model_copy(update={"database_url": SecretStr(url)}), database, temporal)


async def names(engine) -> list[str]:
    async with engine.connect() as conn:
        return [p.name for p in await list_partitions(conn)]


def one_process(status: int, attempts: list[tuple[int, int]]) -> str:
    """A process of `status` with attempts (attempt status, started days ago)."""
    rows = ", ".join(f"({n}, {attempt_status}, {days})" for n, (attempt_status, days) in enumerate(attempts, 1))
    return (
        one_workflow("Open")
        + f""", made AS (
    INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue)
    SELECT activity.workflow_id, {status}, 'q' FROM activity RETURNING id
)
INSERT INTO workflow_process_activity_logs
    (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
SELECT made.id, activity.id, a.status, now() - a.days * interval '1 day',
       CASE WHEN a.status <> 1 THEN now() - a.days * interval '1 day' + interval '1 second' END, a.n, 1, 'run'
FROM made, activity, (VALUES {rows}) AS a(n, status, days)
"""
    )


async def test_a_month_with_an_attempt_still_open_is_kept(settings, database_url):
    """A live process's attempts: one closed 140 days ago, one left In Progress 100 days ago, one
    today. Prune drops the first one's month, keeps the open one's (and says so) and today's;
    the rolled-up figures of every attempt stay."""
    async with of_its_own(settings, database_url, "keep_open") as (database, own):
        now = datetime.now(UTC)
        await ensure_partitions(database.engine, since=now - timedelta(days=141))
        async with database.engine.begin() as conn:
            await conn.execute(sa.text(one_process(4, [(2, 140), (1, 100), (2, 0)])))
            rolled_up = await conn.scalar(sa.text("SELECT sum(successes + failures) FROM workflow_activity_hours"))
        before = await names(database.engine)
        open_month = month_start(now - timedelta(days=100))

        counted = await own.prune(timedelta(days=30), dry_run=True)
        assert [p.start for p in counted.kept_open] == [open_month]
        assert month_start(now - timedelta(days=140)) in [p.start for p in counted.partitions]
        assert await names(database.engine) == before, "a dry run drops nothing"

        result = await own.prune(timedelta(days=30))
        assert (result.found, result.deleted) == (0, 0)
        after = await names(database.engine)
        assert after == [name for name in before if name not in {p.name for p in result.partitions}]
        assert open_month not in [p.start for p in result.partitions]
        async with database.engine.connect() as conn:
            left = sorted((await conn.execute(sa.text("SELECT step FROM workflow_process_activity_logs"))).scalars())
            assert left == [2, 3], "the open attempt and today's stay; the old closed one went with its month"
            assert await conn.scalar(sa.text("SELECT count(*) FROM workflow_processes")) == 1, "a live process stays"
            assert await conn.scalar(sa.text("SELECT sum(successes + failures) FROM workflow_activity_hours")) == rolled_up


async def test_partitions_are_made_ahead_once(settings, database_url):
    async with of_its_own(settings, database_url, "ahead") as (database, own):
        last = month_start(datetime.now(UTC))
        for _ in range(MONTHS_AHEAD + 1):
            last = next_month(last)
        assert (await own.partitions())[-1].end == last, "the migration made the months ahead"
        assert await ensure_partitions(database.engine) == [], "and a second time makes none"
        for _ in range(3):
            last = next_month(last)
        made = await own.partitions(ahead=MONTHS_AHEAD + 3)
        assert made[-1].end == last
        assert all(a.end == b.start for a, b in itertools.pairwise(made)), "months follow each other without a gap"
        for bad in (-1, 121, True, "3"):
            try:
                await own.partitions(ahead=bad)  # type: ignore[arg-type]
            except InvalidArgument:
                continue
            raise AssertionError(f"partitions(ahead={bad!r}) was accepted")
        async with database.engine.begin() as conn:
            try:
                await conn.execute(sa.text(one_process(2, [(2, 3000)])))
            except sa.exc.DBAPIError as exc:
                assert "no partition" in str(exc)
            else:
                raise AssertionError("an attempt of eight years ago found a partition")


async def test_dropping_a_month_does_not_hold_up_writers(settings, database_url):
    """While prune drops a month that a long transaction still reads, attempts and processes are
    written as fast as ever; the drop finishes once that transaction ends."""
    async with of_its_own(settings, database_url, "no_block") as (database, own):
        now = datetime.now(UTC)
        await ensure_partitions(database.engine, since=now - timedelta(days=70))
        async with database.engine.begin() as conn:
            await conn.execute(sa.text(one_process(4, [(2, 60), (2, 0)])))
            await conn.execute(
                sa.text(
                    "INSERT INTO workflow_process_activity_logs (workflow_process_id, workflow_activity_id, "
                    "workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id) "
                    "SELECT workflow_process_id, workflow_activity_id, 2, started_at + n * interval '1 ms', completed_at, 10 + n, 1, 'run' "
                    "FROM workflow_process_activity_logs, generate_series(1, 50000) AS n WHERE step = 1"
                )
            )
        old_month = month_start(now - timedelta(days=60))
        reader = await database.engine.connect()
        writer = await database.engine.connect()
        try:
            await reader.begin()
            assert (
                await reader.scalar(
                    sa.text(
                        f"SELECT count(*) FROM workflow_process_activity_logs WHERE started_at < '{next_month(old_month).isoformat()}'"
                    )
                )
                == 50001
            )
            pruning = asyncio.create_task(own.prune(timedelta(days=30)))
            await asyncio.sleep(1.0)
            assert not pruning.done(), "the detach waits for the reader"
            await writer.execute(sa.text("SET statement_timeout = '2s'"))
            await writer.commit()
            took = []
            for n in range(20):
                started = time.perf_counter()
                async with writer.begin():
                    await writer.execute(
                        sa.text(
                            "INSERT INTO workflow_process_activity_logs (workflow_process_id, workflow_activity_id, "
                            "workflow_process_activity_log_status_id, started_at, step, attempt, temporal_run_id) "
                            "SELECT workflow_process_id, workflow_activity_id, 1, now(), 100000 + :n, 1, 'run' "
                            "FROM workflow_process_activity_logs WHERE step = 2"
                        ),
                        {"n": n},
                    )
                    await writer.execute(sa.text("UPDATE workflow_processes SET updated_at = now()"))
                took.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)
            assert max(took) < 1.0, took
            assert not pruning.done(), "still waiting for the reader"
            await reader.rollback()
            result = await asyncio.wait_for(pruning, timeout=60)
        finally:
            await reader.close()
            await writer.close()
        assert old_month in [p.start for p in result.partitions]
        assert month_name_gone(old_month, await names(database.engine))
        async with database.engine.connect() as conn:
            assert (
                await conn.scalar(sa.text("SELECT count(*) FROM workflow_process_activity_logs WHERE step >= 100000")) == 20
            )


def month_name_gone(month: datetime, partitions: list[str]) -> bool:
    return not any(name.endswith(f"_{month:%Y_%m}") for name in partitions)


async def test_a_month_left_detached_by_prune_is_dropped_and_one_archived_by_hand_is_not(settings, database_url):
    """A prune that detached a month but could not drop it marked it; the next prune drops it. A
    month someone detached to archive it is not the mirror's any more: prune leaves it alone."""
    async with of_its_own(settings, database_url, "left") as (database, own):
        now = datetime.now(UTC)
        await ensure_partitions(database.engine, since=now - timedelta(days=100))
        archived, interrupted = month_name(month_start(now - timedelta(days=100))), month_name(month_start(now - timedelta(days=70)))
        async with database.engine.begin() as conn:
            for name in (archived, interrupted):
                await conn.execute(sa.text(f"ALTER TABLE workflow_process_activity_logs DETACH PARTITION {name}"))
            await conn.execute(sa.text(f"COMMENT ON TABLE {interrupted} IS '{DETACHED_MARK}'"))
        await own.prune(timedelta(days=30))
        async with database.engine.connect() as conn:
            left = {name: await conn.scalar(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}) for name in (archived, interrupted)}
        assert left == {archived: True, interrupted: False}
