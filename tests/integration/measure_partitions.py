"""What the attempt log's monthly partitions cost and save, on an embedded Postgres of its own:

1. the upgrade to 0010 of a log of ROWS attempts (it checks their range and builds the two new
   unique keys on them), per million rows;
2. a month dropped by `db prune` (detach concurrently, drop) against the same month's rows
   deleted as prune deleted them before (by their processes, 1,000 to a transaction), and the
   longest a writer waited meanwhile.

Run: .venv/bin/python -m tests.integration.measure_partitions [ROWS]   (default 2,000,000)
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import sqlalchemy as sa

from tests.integration.measure_rollup import GRAPH
from tests.integration.measuring import on_own_postgres
from workflowable.db.database import create_engine, plain_url, upgrade
from workflowable.db.partitions import drop_partitions_before, ensure_partitions, list_partitions

#: ROWS attempts, 5 to a Completed process, the g-th started g * :spacing seconds ago.
FILL = """
WITH made AS (
    INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue, completed_at, updated_at)
    SELECT 1, 7, 'q', now() - (n * 5 * :spacing || ' seconds')::interval, now() - (n * 5 * :spacing || ' seconds')::interval
    FROM generate_series(0, :rows / 5 - 1) n
    RETURNING id
), first AS (SELECT min(id) AS id FROM made)
INSERT INTO workflow_process_activity_logs
    (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
SELECT first.id + g / 5, 1 + g % 100, 2, now() - (g * :spacing || ' seconds')::interval,
       now() - (g * :spacing || ' seconds')::interval + interval '20 ms', 1 + g % 5, 1, 'run'
FROM first, generate_series(0, :rows - 1) g
"""


def upgrade_cost(url: str, rows: int) -> None:
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        conn.execute(GRAPH)
        conn.execute(FILL.replace(":spacing", "1").replace(":rows", str(rows)))
        conn.execute("VACUUM ANALYZE")
    started = time.perf_counter()
    upgrade(url)
    took = time.perf_counter() - started
    print(f"upgrade to 0010 of {rows:,} attempt rows: {took:.1f} s, {took / rows * 1e6:.1f} s per million")


async def drop_cost(url: str, rows: int) -> None:
    engine = create_engine(url)
    try:
        now = datetime.now(UTC)
        spacing = 60 * 86400 / rows  # the log spans 60 days
        await ensure_partitions(engine, since=now - timedelta(days=61))
        async with engine.begin() as conn:
            await conn.execute(sa.text(GRAPH))
            await conn.execute(sa.text(FILL.replace(":spacing", f"{spacing:.6f}").replace(":rows", str(rows))))
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE"))
            partitions = await list_partitions(conn)
        cutoff = now - timedelta(days=30)
        going = [p for p in partitions if p.end <= cutoff and p.rows]
        month = max(going, key=lambda p: p.rows)
        print(f"{len(partitions)} partitions; the month {month.name}: {month.rows:,} rows, {month.bytes / 2**20:,.0f} MiB with its indexes")

        # The same month's rows deleted as prune did before: by process, 1,000 to a transaction.
        async with engine.connect() as conn:
            processes = [
                row[0]
                for row in await conn.execute(
                    sa.text(f"SELECT DISTINCT workflow_process_id FROM {month.name} ORDER BY 1 LIMIT 20000")
                )
            ]
        started = time.perf_counter()
        for first in range(0, len(processes), 1000):
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text("DELETE FROM workflow_processes WHERE id = ANY(CAST(:ids AS bigint[]))"), {"ids": processes[first : first + 1000]}
                )
        deleted_per_million = (time.perf_counter() - started) / (len(processes) * 5) * 1e6
        print(f"deleting by process as before: {deleted_per_million:.1f} s per million attempt rows ({len(processes) * 5:,} deleted)")

        waits: list[float] = []
        stop = asyncio.Event()

        async def write() -> None:
            async with engine.connect() as conn:
                for n in range(100_000):
                    if stop.is_set():
                        return
                    begun = time.perf_counter()
                    async with conn.begin():
                        await conn.execute(
                            sa.text(
                                "INSERT INTO workflow_process_activity_logs (workflow_process_id, workflow_activity_id, "
                                "workflow_process_activity_log_status_id, started_at, step, attempt, temporal_run_id) "
                                "SELECT max(id), 1, 1, now(), :n, 1, 'writer' FROM workflow_processes"
                            ),
                            {"n": n},
                        )
                    waits.append(time.perf_counter() - begun)
                    await asyncio.sleep(0.005)

        writer = asyncio.create_task(write())
        await asyncio.sleep(1)
        before = len(waits)
        started = time.perf_counter()
        dropped = await drop_partitions_before(engine, cutoff)
        took = time.perf_counter() - started
        stop.set()
        await writer
        during = sorted(waits[before:])
        gone = sum(p.rows or 0 for p in dropped.dropped)
        print(f"prune dropped {len(dropped.dropped)} partitions ({gone:,} rows) in {took * 1000:.0f} ms")
        print(
            f"a writer meanwhile: {len(during)} inserts, p50 {during[len(during) // 2] * 1000:.1f} ms, "
            f"longest {during[-1] * 1000:.1f} ms (before: p50 {sorted(waits[:before])[before // 2] * 1000:.1f} ms)"
        )
    finally:
        await engine.dispose()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    on_own_postgres(lambda url: upgrade_cost(url, rows), revision="0009")
    on_own_postgres(lambda url: asyncio.run(drop_cost(url, rows)))


if __name__ == "__main__":
    main()
