"""Time partitions of the attempt log: `workflow_process_activity_logs` is partitioned by range of
`started_at`, one partition per calendar month (UTC), named `workflow_process_activity_logs_YYYY_MM`.
A database upgraded with rows in its attempt log keeps them in one partition that holds every
attempt started before the month after the upgrade (`..._before_YYYY_MM`).

Retention drops whole partitions (`db prune`, see `_drop` for its locks): a month of attempts
goes in the time it takes to unlink its files, without deleting a row.

Partitions are created ahead, for the current month and MONTHS_AHEAD after it, by the migration,
by every worker (at start, then every KEEP_AHEAD_EVERY), by `db prune` and by `db partitions
--ahead`. An attempt that falls in no partition cannot be written, so a deployment needs a worker
running at least once every few months, which it has. Creating one stops no writer: the table is
made on its own, then attached, which locks the log only against other schema changes; its
foreign keys lock the tables they name for an instant, waited for at most LOCK_TIMEOUT (the next
call tries again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import DatabaseError
from ..states import AttemptStatus
from .database import is_transient

TABLE = "workflow_process_activity_logs"
#: Partitions exist for the current month and this many after it.
MONTHS_AHEAD = 3
#: How long a schema change of the attempt log waits for a lock that writers would queue
#: behind, before it gives up (creating partitions: until the next call; dropping one: it
#: tries again, DROP_TRIES times in all, LOCK_TIMEOUT apart).
LOCK_TIMEOUT_SECONDS = 1
LOCK_TIMEOUT = f"{LOCK_TIMEOUT_SECONDS}s"
DROP_TRIES = 30
#: One schema change of the attempt log's partitions at a time, across every process.
_ADVISORY_KEY = "workflowable attempt-log partitions"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime | None  #: its first instant; None: from the beginning (the log before partitioning)
    end: datetime  #: the instant after its last
    rows: int | None  #: Postgres's estimate (pg_class.reltuples); None before the table is first analyzed
    bytes: int  #: on disk, indexes included
    detaching: bool = False  #: a detach that was interrupted: the next prune finishes it


LIST = sa.text(
    f"""
    SELECT c.relname AS name,
           CAST(substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']*)''\\)') AS timestamptz) AS start,
           CAST(substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']*)''\\)') AS timestamptz) AS "end",
           CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS rows,
           pg_total_relation_size(c.oid) AS bytes,
           i.inhdetachpending AS detaching
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = CAST('{TABLE}' AS regclass)
    ORDER BY 3
    """
)


async def list_partitions(conn: AsyncConnection) -> list[Partition]:
    """The attempt log's partitions, oldest first."""
    return [Partition(**row._mapping) for row in await conn.execute(LIST)]


def month_start(when: datetime) -> datetime:
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def month_name(start: datetime) -> str:
    return f"{TABLE}_{start:%Y_%m}"


async def ensure_partitions(engine: AsyncEngine, *, since: datetime | None = None, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the monthly partitions missing from the month of `since` (the current month if
    None) to `ahead` months after the current one; the names of those created. A month that an
    existing partition covers, wholly or in part, is left as it is."""
    if ahead < 0:
        raise ValueError(f"ahead is 0 or more months, got {ahead}")
    created: list[str] = []
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        if not await conn.scalar(sa.text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": _ADVISORY_KEY}):
            return created  # another worker is making them now
        now = await conn.scalar(sa.text("SELECT now()"))
        existing = await list_partitions(conn)
        month, last = month_start(since or now), month_start(now)
        for _ in range(ahead):
            last = next_month(last)
        while month <= last:
            after = next_month(month)
            if not any((p.start is None or p.start < after) and month < p.end for p in existing):
                name = month_name(month)
                await conn.execute(sa.text(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)"))
                await conn.execute(
                    sa.text(
                        f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ('{month.isoformat()}') TO ('{after.isoformat()}')"
                    )
                )
                created.append(name)
            month = after
    return created


@dataclass(frozen=True)
class DroppedPartitions:
    dropped: list[Partition]  #: detached and dropped (or, in a dry run, that would be)
    kept_open: list[Partition]  #: old enough, but an attempt in it is still In Progress


#: What a prune writes on a partition it has detached, so that the next one drops it if this one
#: could not (and a table someone else detached, to archive it, is left alone).
DETACHED_MARK = "workflowable: detached by db prune, to be dropped"
LEFT_DETACHED = sa.text(
    "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
    "AND relnamespace = CAST(current_schema() AS regnamespace) AND obj_description(oid, 'pg_class') = :mark"
)


#: Whether a partition's detach is pending (an interrupted DETACH CONCURRENTLY); no row once detached.
DETACH_PENDING = sa.text("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass(:name)")


async def drop_partitions_before(engine: AsyncEngine, before: datetime, *, dry_run: bool = False) -> DroppedPartitions:
    """Detach and drop every partition whose attempts all started before `before`, oldest first,
    but for one that holds an attempt still In Progress (reconcile closes those first)."""
    async with engine.connect() as conn:
        old = [p for p in await list_partitions(conn) if p.end <= before]
        kept_open = []
        for partition in old:
            if await conn.scalar(
                sa.text(f"SELECT EXISTS (SELECT 1 FROM {partition.name} WHERE workflow_process_activity_log_status_id = :open)"),
                {"open": AttemptStatus.IN_PROGRESS},
            ):
                kept_open.append(partition)
        left = list((await conn.execute(LEFT_DETACHED, {"mark": DETACHED_MARK})).scalars())
    going = [p for p in old if p not in kept_open]
    if dry_run:
        return DroppedPartitions(going, kept_open)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for name in left + [p.name for p in going]:
            await _drop(conn, name)
    return DroppedPartitions(going, kept_open)


async def _drop(conn: AsyncConnection, name: str) -> None:
    """Detach the partition `name` (if it still is one) and drop it.

    DETACH ... CONCURRENTLY runs in two transactions of its own and waits, between them, for the
    transactions that still read the partition (a long report); writers and readers of the log
    go on meanwhile. Its second part, and the drop, take for an instant locks on the tables the
    log's foreign keys name (the processes among them), which writers would queue behind. So
    every step waits at most LOCK_TIMEOUT for a lock and is tried again, DROP_TRIES times in
    all; an interrupted detach is finished (FINALIZE) by the next try or the next prune."""
    for attempt in range(1, DROP_TRIES + 1):
        await conn.execute(sa.text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
        try:
            pending = await conn.scalar(DETACH_PENDING, {"name": name})
            if pending is not None:
                how = "FINALIZE" if pending else "CONCURRENTLY"
                await conn.execute(sa.text(f"ALTER TABLE {TABLE} DETACH PARTITION {name} {how}"))
                await conn.execute(sa.text(f"COMMENT ON TABLE {name} IS '{DETACHED_MARK}'"))
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            return
        except sa.exc.OperationalError as exc:
            if not isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                raise
            if attempt == DROP_TRIES:
                raise DatabaseError(
                    f"prune could not detach and drop {name}: a lock it needs was held for {DROP_TRIES * 2} s "
                    "(a long transaction on the attempt log or the processes); run it again, it goes on where it stopped"
                ) from exc
            await asyncio.sleep(LOCK_TIMEOUT_SECONDS)
        finally:
            await conn.execute(sa.text("RESET lock_timeout"))


#: How often a worker makes sure the partitions ahead exist, and how soon it tries again after
#: it could not for a passing reason (Postgres down or restarting); a refusal (a role that does
#: not own the log) waits for the next round, so that it is logged four times a day, not always.
KEEP_AHEAD_EVERY = 6 * 3600.0
KEEP_AHEAD_RETRY = 60.0


async def keep_partitions_ahead(engine: AsyncEngine, stop: asyncio.Event) -> None:
    """Until `stop` is set: `ensure_partitions`, again every KEEP_AHEAD_EVERY seconds. Every worker
    runs this, so partitions keep coming without a schedule or a cron job. A pass under way when
    `stop` is set finishes first: cancelled mid-statement, it would take its connection with it,
    and the engine may be one the worker borrowed from its caller."""
    while not stop.is_set():
        again = KEEP_AHEAD_EVERY
        try:
            created = await ensure_partitions(engine)
        except sa.exc.SQLAlchemyError as exc:
            again = KEEP_AHEAD_RETRY if is_transient(exc) else KEEP_AHEAD_EVERY
            log.warning("could not create the attempt log's partitions ahead (trying again in %.0f s): %s", again, exc)
        else:
            if created:
                log.info("created the attempt log's partitions %s", ", ".join(created))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), again)
