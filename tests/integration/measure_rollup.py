"""The per-activity report before the rollup (every attempt row of the window, or of all
history) and after (the rolled-up hours), on an attempt log of ROWS rows spread 0.6 s apart
(100 activities, 1% failures, durations up to a second); and what the triggers cost: a bulk load
and a single-row close, each with its trigger and without, in turns. On an embedded Postgres of
its own, stopped afterwards.

Run: .venv/bin/python -m tests.integration.measure_rollup [ROWS]   (default 1,000,000)
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.integration.measuring import on_own_postgres, partitions_since
from workflowable.db.database import plain_url
from workflowable.db.reporting_sql import ACTIVITY_OUTCOMES_SINCE, VIEWS

MIGRATION = Path(__file__).resolve().parents[2] / "workflowable/db/migrations/versions/0008_attempt_rollups.py"
CHUNK = 100_000
CLOSES = 4_000

GRAPH = """
INSERT INTO workflow_events (name, class_name) VALUES ('E', 'm.E');
INSERT INTO workflow_activity_types (name, class_name) VALUES ('Step', 'm.Step');
INSERT INTO workflow_priorities (name, priority) VALUES ('p', 0);
INSERT INTO workflows (name, workflow_event_id, workflow_status_id, workflow_priority_id, retry_interval) VALUES ('w', 1, 2, 1, 60);
INSERT INTO workflow_activities (workflow_id, workflow_activity_type_id, name) SELECT 1, 1, 'a' || g FROM generate_series(1, 100) g;
"""
LOAD = """
INSERT INTO workflow_process_activity_logs (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id,
    started_at, completed_at, step, attempt, temporal_run_id)
SELECT 1 + (g / 100), 1 + g %% 100, CASE WHEN g %% 100 = 7 THEN 3 ELSE 2 END,
       now() - (g * 0.6 || ' seconds')::interval, now() - (g * 0.6 || ' seconds')::interval + ((g %% 1000) || ' milliseconds')::interval,
       1 + g %% 100, 1, 'm'
FROM generate_series(CAST(%(first)s AS bigint), CAST(%(last)s AS bigint)) g
"""  # psycopg's parameters: %% is the modulo


def migration() -> object:
    spec = importlib.util.spec_from_file_location("rollup_migration", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trigger(conn: psycopg.Connection, name: str, on: bool) -> None:
    conn.execute(f"ALTER TABLE workflow_process_activity_logs {'ENABLE' if on else 'DISABLE'} TRIGGER {name}")


def median_ms(conn: psycopg.Connection, query: str, params: dict, runs: int = 3) -> float:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


def measure(url: str, rows: int) -> None:
    frozen = migration()
    before_all = frozen.OUTCOMES_BEFORE  # type: ignore[attr-defined]
    columns = before_all.split("FROM workflow_activities a")[0]
    before_window = columns + (
        " FROM workflow_activities a JOIN workflows w ON w.id = a.workflow_id"
        " JOIN workflow_process_activity_logs l ON l.workflow_activity_id = a.id AND l.started_at >= %(since)s"
        " GROUP BY a.workflow_id, w.name, a.id, a.name ORDER BY w.name, a.name"
    )
    partitions_since(url, datetime.now(UTC) - timedelta(seconds=rows * 0.6 + 60))  # the g-th attempt is 0.6 g seconds old
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        conn.execute(GRAPH)
        processes = rows // 100 + 1
        conn.execute("INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue) SELECT 1, 7, 'q' FROM generate_series(1, %s)", (processes,))
        loads: dict[bool, list[float]] = {True: [], False: []}
        for k, first in enumerate(range(0, rows, CHUNK)):
            on = k % 2 == 0
            trigger(conn, "workflowable_roll_up_inserted", on)
            started = time.perf_counter()
            conn.execute(LOAD, {"first": first, "last": min(rows, first + CHUNK) - 1})
            loads[on].append(time.perf_counter() - started)
        trigger(conn, "workflowable_roll_up_inserted", True)
        conn.execute("TRUNCATE workflow_activity_hours")
        started = time.perf_counter()
        conn.execute(frozen.BACKFILL)  # type: ignore[attr-defined]  # every row loaded, as the upgrade to 0008 adds them
        backfill = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE")
        hours = conn.execute("SELECT count(*) FROM workflow_activity_hours").fetchone()[0]  # type: ignore[index]
        size = conn.execute("SELECT pg_total_relation_size('workflow_activity_hours')").fetchone()[0]  # type: ignore[index]
        print(f"{rows:,} attempt rows, {hours:,} rolled-up rows of {size / hours:.0f} bytes each with their indexes")
        print(f"load of {CHUNK:,} rows: {statistics.median(loads[True]):.2f} s with the trigger, {statistics.median(loads[False]):.2f} s without")
        print(f"the upgrade's pass over {rows:,} closed rows: {backfill:.1f} s")
        since = {"since": conn.execute("SELECT now() - interval '24 hours'").fetchone()[0]}  # type: ignore[index]
        after_window = ACTIVITY_OUTCOMES_SINCE.replace(":since", "%(since)s")
        for name, query, params in (
            ("last 24 h, before", before_window, since),
            ("last 24 h, after", after_window, since),
            ("all history, before", before_all, {}),
            ("all history, after", VIEWS["workflow_activity_outcomes"], {}),
        ):
            print(f"per-activity outcomes, {name}: {median_ms(conn, query, params):.1f} ms")
        conn.execute(
            "INSERT INTO workflow_process_activity_logs (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, "
            "started_at, step, attempt, temporal_run_id) SELECT 1 + g %% %s, 1 + g %% 100, 1, now(), 1000 + g, 2, 'open' FROM generate_series(0, %s) g",
            (processes, CLOSES - 1),
        )
        opened = [row[0] for row in conn.execute("SELECT id FROM workflow_process_activity_logs WHERE workflow_process_activity_log_status_id = 1 ORDER BY id")]
        closes: dict[bool, list[float]] = {True: [], False: []}
        for k, attempt_id in enumerate(opened):
            on = (k // 100) % 2 == 0
            if k % 100 == 0:
                trigger(conn, "workflowable_roll_up_closed", on)
            started = time.perf_counter()
            conn.execute(
                "UPDATE workflow_process_activity_logs SET workflow_process_activity_log_status_id = 2, completed_at = now() WHERE id = %s",
                (attempt_id,),
            )
            closes[on].append((time.perf_counter() - started) * 1000)
        trigger(conn, "workflowable_roll_up_closed", True)
        print(f"single-row close: p50 {statistics.median(closes[True]):.3f} ms with the trigger, {statistics.median(closes[False]):.3f} ms without")
        inserts: dict[bool, list[float]] = {True: [], False: []}
        for k in range(CLOSES):  # an attempt that closes at its first write, as most Success writes land
            on = (k // 100) % 2 == 0
            if k % 100 == 0:
                trigger(conn, "workflowable_roll_up_inserted", on)
            started = time.perf_counter()
            conn.execute(
                "INSERT INTO workflow_process_activity_logs (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, "
                "started_at, completed_at, step, attempt, temporal_run_id) VALUES (%s, %s, 2, now() - interval '20 ms', now(), %s, 3, 'closed')",
                (1 + k % processes, 1 + k % 100, 1000 + k),
            )
            inserts[on].append((time.perf_counter() - started) * 1000)
        trigger(conn, "workflowable_roll_up_inserted", True)
        print(f"single-row insert of a closed attempt: p50 {statistics.median(inserts[True]):.3f} ms with the trigger, {statistics.median(inserts[False]):.3f} ms without")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    on_own_postgres(lambda url: measure(url, rows))


if __name__ == "__main__":
    main()
