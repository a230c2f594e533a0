"""Retention: the mirror kept to a chosen age. `prune` first drops the attempt log's monthly
partitions whose attempts all started before the cutoff (db/partitions.py: detached
concurrently, then dropped, so writers and readers go on), then deletes the finished processes
(Completed, Failed, Cancelled) that ended before it, with everything that belongs to them
(attempt rows left in newer partitions, tokens, deliveries, the record of their checks, swap
audit rows), in batches of one short transaction each: row locks only, never a lock on a table,
and an interrupted prune is resumed by running it again. Live processes are never deleted,
however old; their attempts in a dropped partition go with it (the rolled-up hours keep the
reports' figures of every attempt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ..states import TERMINAL, ProcessStatus
from .partitions import Partition, drop_partitions_before, ensure_partitions

#: Finished processes that ended before :before, found by two index scans: Completed ones by
#: completed_at, Failed and Cancelled ones by status (their row's last change is their end).
_ENDED_BEFORE = f"""
    (SELECT id FROM workflow_processes
     WHERE completed_at < CAST(:before AS timestamptz) AND workflow_process_status_id = {ProcessStatus.COMPLETED:d}
     ORDER BY completed_at LIMIT :batch)
    UNION ALL
    (SELECT id FROM workflow_processes
     WHERE workflow_process_status_id IN ({ProcessStatus.FAILED:d}, {ProcessStatus.CANCELLED:d}) AND updated_at < CAST(:before AS timestamptz)
     ORDER BY id LIMIT :batch)
"""
ENDED_BEFORE = sa.text(f"SELECT id FROM ({_ENDED_BEFORE}) AS ended LIMIT :batch")
COUNT_ENDED_BEFORE = sa.text(
    f"""
    SELECT (SELECT count(*) FROM workflow_processes
            WHERE completed_at < CAST(:before AS timestamptz) AND workflow_process_status_id = {ProcessStatus.COMPLETED:d})
         + (SELECT count(*) FROM workflow_processes
            WHERE workflow_process_status_id IN ({ProcessStatus.FAILED:d}, {ProcessStatus.CANCELLED:d}) AND updated_at < CAST(:before AS timestamptz))
    """
)
#: Each table's rows of the processes cascade with them (every foreign key to a process does).
DELETE_PROCESSES = sa.text(
    "DELETE FROM workflow_processes WHERE id = ANY(CAST(:ids AS bigint[])) "
    f"AND workflow_process_status_id IN ({', '.join(str(int(s)) for s in sorted(TERMINAL))})"  # not retried meanwhile
)


@dataclass(frozen=True)
class PruneResult:
    before: datetime  #: processes that ended before this
    found: int  #: finished processes that ended before it, when the prune began
    deleted: int  #: deleted by this run (0 with a dry run)
    #: attempt-log partitions dropped by this run (with a dry run: that it would drop)
    partitions: tuple[Partition, ...] = ()
    #: partitions old enough to go but kept: an attempt in them is still In Progress
    kept_open: tuple[Partition, ...] = ()


async def prune(
    engine: AsyncEngine, older_than: timedelta, *, batch: int = 1_000, dry_run: bool = False, progress: Callable[[int], None] | None = None
) -> PruneResult:
    """Drop the attempt-log partitions older than `older_than` (by the database's clock), then
    delete the finished processes that ended before then, `batch` at a time; `progress` is told
    how many each batch deleted. The partitions ahead are made sure of first."""
    async with engine.connect() as conn:
        before = await conn.scalar(sa.text("SELECT now() - CAST(:older_than AS interval)"), {"older_than": older_than})
        found = int(await conn.scalar(COUNT_ENDED_BEFORE, {"before": before}) or 0)
    if not dry_run:
        await ensure_partitions(engine)
    dropped = await drop_partitions_before(engine, before, dry_run=dry_run)
    deleted = 0
    while not dry_run:
        async with engine.begin() as conn:
            ids = [row.id for row in await conn.execute(ENDED_BEFORE, {"before": before, "batch": batch})]
            if not ids:
                break
            await conn.execute(DELETE_PROCESSES, {"ids": ids})
        deleted += len(ids)
        if progress is not None:
            progress(len(ids))
    return PruneResult(before, found, deleted, tuple(dropped.dropped), tuple(dropped.kept_open))
