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
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..states import AttemptStatus

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
    rows: int  #: Postgres's estimate (pg_class.reltuples), 0 before the table is first analyzed
    bytes: int  #: on disk, indexes included
    detaching: bool = False  #: a detach that was interrupted: the next prune finishes it


LIST = sa.text(
    f"""
    SELECT c.relname AS name,
           CAST(substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']*)''\\)') AS timestamptz) AS start,
           CAST(substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']*)''\\)') AS timestamptz) AS "end",
           greatest(c.reltuples, 0)::bigint AS rows,
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
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _ADVISORY_KEY})
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


#: Partitions a prune detached but could not drop (its DROP gave up waiting for a lock).
LEFT_DETACHED = sa.text(
    f"""
    SELECT relname FROM pg_class
    WHERE relkind = 'r' AND NOT relispartition AND relnamespace = CAST(current_schema() AS regnamespace)
      AND relname ~ '^{TABLE}_(before_)?[0-9]{{4}}_[0-9]{{2}}$'
    """
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
        left = list((await conn.execute(LEFT_DETACHED)).scalars())
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
    transactions that still read the partition (a long report): writers and readers of the log
    go on meanwhile, as its locks do not conflict with theirs, so it waits without a timeout.
    Dropping the detached table takes, for an instant, locks on the tables its foreign keys name
    (the processes among them): it waits for them at most LOCK_TIMEOUT at a time, so that
    writers never queue behind it for longer, and tries again."""
    for attempt in range(1, DROP_TRIES + 1):
        try:
            pending = await conn.scalar(DETACH_PENDING, {"name": name})
            if pending is not None:
                how = "FINALIZE" if pending else "CONCURRENTLY"  # an interrupted detach is finished
                await conn.execute(sa.text(f"ALTER TABLE {TABLE} DETACH PARTITION {name} {how}"))
            await conn.execute(sa.text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            return
        except sa.exc.OperationalError as exc:
            if not isinstance(exc.orig, psycopg.errors.LockNotAvailable) or attempt == DROP_TRIES:
                raise
            await asyncio.sleep(LOCK_TIMEOUT_SECONDS)
        finally:
            await conn.execute(sa.text("RESET lock_timeout"))


#: How often a worker makes sure the partitions ahead exist, and how soon it tries again after
#: it could not (Postgres down, a lock it gave up on, a role without the right to create tables).
KEEP_AHEAD_EVERY = 6 * 3600.0
KEEP_AHEAD_RETRY = 60.0


async def keep_partitions_ahead(engine: AsyncEngine) -> None:
    """Until cancelled: `ensure_partitions`, again every KEEP_AHEAD_EVERY seconds. Every worker
    runs this, so partitions keep coming without a schedule or a cron job."""
    while True:
        try:
            created = await ensure_partitions(engine)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not create the attempt log's partitions ahead (trying again in %.0f s): %s", KEEP_AHEAD_RETRY, exc)
            await asyncio.sleep(KEEP_AHEAD_RETRY)
            continue
        if created:
            log.info("created the attempt log's partitions %s", ", ".join(created))
        await asyncio.sleep(KEEP_AHEAD_EVERY)
