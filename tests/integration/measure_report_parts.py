"""Each of the report's queries on a grown mirror: EXPLAIN ANALYZE's execution time (median of
three) on PROCESSES finished processes and 1,000,000 attempt rows (five at most to a process),
one a second back in time (so the last 24 hours hold 86,400), on an embedded Postgres of its own, stopped afterwards. Shows
which part grows with the whole mirror (the all-history status counts) and which with the
window only. The transitions taken are timed twice: on rows that name no previous activity
(as written before migration 0011), then on rows that do.

Run: .venv/bin/python -m tests.integration.measure_report_parts [PROCESSES]   (default 2,000,000)
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.conftest import one_workflow
from tests.integration.measuring import execution_ms, on_own_postgres
from workflowable.db import reporting_sql
from workflowable.db.database import create_engine
from workflowable.db.partitions import ensure_partitions

ATTEMPTS = 1_000_000

FILL = one_workflow("Measured") + """, made AS (
    INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, last_workflow_activity_id, queue, completed_at)
    SELECT activity.workflow_id, 7, activity.id, 'measured', now() - (n * 5 || ' seconds')::interval
    FROM activity, generate_series(1, :processes) AS n
    RETURNING id
)
INSERT INTO workflow_process_activity_logs
    (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
SELECT (SELECT min(id) FROM made) + g / 5, activity.id, CASE WHEN g % 100 = 7 THEN 3 ELSE 2 END,
       now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval + interval '5 milliseconds', 1 + g % 5, 1, 'run'
FROM activity, generate_series(0, :attempts - 1) AS g
"""


async def measure(url: str, processes: int) -> None:
    engine = create_engine(url)
    try:
        await ensure_partitions(
            engine, since=datetime.now(UTC) - timedelta(seconds=5 * processes + 60)
        )  # the g-th attempt is g seconds old
        async with engine.begin() as conn:
            attempts = min(ATTEMPTS, 5 * processes)  # five at most to a process
            await conn.execute(sa.text(FILL), {"processes": processes, "attempts": attempts})
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE"))
            since = datetime.now(UTC) - timedelta(hours=24)
            queries = {
                "processes per status, all history (the view)": (reporting_sql.ALL_STATUS_COUNTS, {}),
                "processes per status, last 24 h": (reporting_sql.STATUS_COUNTS_SINCE, {"since": since}),
                "outcomes per activity, last 24 h": (reporting_sql.ACTIVITY_OUTCOMES_SINCE, {"since": since}),
                "processes ended per hour": (reporting_sql.HOURLY_ENDINGS, {"since": since}),
                "failed processes": (reporting_sql.FAILED_PROCESSES, {"since": since, "limit": 50}),
                "stuck processes": (reporting_sql.STUCK_PROCESSES, {"before": datetime.now(UTC) - timedelta(hours=1), "limit": 50}),
                "transitions taken, last 24 h": (reporting_sql.STEPS_TAKEN, {"since": since}),
            }
            for name, (query, params) in queries.items():
                print(f"{name}: {await execution_ms(conn, query, params):.1f} ms ({processes:,} processes, {attempts:,} attempts)")
            # The fill's rows name no previous activity, as rows written before migration 0011:
            # the transitions above looked each up. Rows the workers write now name it.
            await conn.execute(
                sa.text(
                    "UPDATE workflow_process_activity_logs SET from_workflow_activity_id = workflow_activity_id "
                    "WHERE step > 1 AND started_at >= CAST(:since AS timestamptz)"
                ),
                {"since": since},
            )
            await conn.execute(sa.text("VACUUM ANALYZE workflow_process_activity_logs"))
            ms = await execution_ms(conn, reporting_sql.STEPS_TAKEN, {"since": since})
            print(f"transitions taken, last 24 h, rows naming where they came from: {ms:.1f} ms")
    finally:
        await engine.dispose()


def main() -> None:
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    on_own_postgres(lambda url: asyncio.run(measure(url, processes)))


if __name__ == "__main__":
    main()
