"""Reconcile's selection before (one WHERE with OR) and after (a UNION of two index scans):
execution times from EXPLAIN ANALYZE on the grown database of test_plans.py, on an embedded
Postgres of its own, stopped afterwards.

Run: .venv/bin/python -m tests.integration.measure_reconcile [PROCESSES]   (default 200,000)
"""

from __future__ import annotations

import asyncio
import sys

import sqlalchemy as sa

from tests.integration.measuring import execution_ms, on_own_postgres
from tests.integration.test_plans import FILL, sql
from workflowable.db.database import create_engine
from workflowable.db.reconcile import to_check

BEFORE = (
    "SELECT id, workflow_process_status_id, paused_from_status_id FROM workflow_processes "
    "WHERE workflow_process_status_id IN (1, 2, 3, 4, 5, 6) OR id IN "
    "(SELECT workflow_process_id FROM workflow_process_activity_logs WHERE workflow_process_activity_log_status_id = 1)"
)
RUNS = 7


async def measure(url: str, finished: int) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(FILL), {"finished": finished, "each": 2})
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("ANALYZE"))
            for name, query in (("before (OR)", BEFORE), ("after (UNION)", sql(to_check()))):
                print(f"{name}: median {await execution_ms(conn, query, runs=RUNS):.2f} ms over {RUNS} runs, {finished:,} processes")
    finally:
        await engine.dispose()


def main() -> None:
    finished = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    on_own_postgres(lambda url: asyncio.run(measure(url, finished)))


if __name__ == "__main__":
    main()
