"""The rolled-up attempt log (workflow_activity_hours): the migration adds the attempts closed
before it, the triggers every attempt closed after, and the outcomes read from it match the
attempt rows: counts, sums and the longest exactly, percentiles within their bucket. In a
database of its own, filled by SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from tests.conftest import database_of_its_own, one_workflow
from workflowable.db.database import MIGRATIONS, plain_url, sqlalchemy_url, upgrade
from workflowable.db.reporting_sql import ACTIVITY_OUTCOMES_SINCE

#: 60 processes with an attempt each, over the last three hours, durations from 0 to about 36 s
#: (some under a millisecond), one in seven a Failure.
FILL = one_workflow("Rolled") + """, made AS (
    INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue)
    SELECT activity.workflow_id, 7, 'q' FROM activity, generate_series(1, 60) RETURNING id
)
INSERT INTO workflow_process_activity_logs
    (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
SELECT made.id, activity.id, CASE WHEN made.id % 7 = 0 THEN 3 ELSE 2 END, t.started,
       t.started + (made.id % 13) * interval '37 ms' * power(3, made.id % 5), 1, 1, 'run'
FROM made, activity, LATERAL (SELECT now() - (made.id % 3) * interval '1 hour' - interval '1 minute' AS started) AS t
"""

#: The same figures, exact, from the attempt rows (closed since :since).
EXACT = """
SELECT count(*) FILTER (WHERE s IN (2, 3)) + count(*) FILTER (WHERE s = 1) AS attempts,
       count(*) FILTER (WHERE s = 2) AS successes, count(*) FILTER (WHERE s = 3) AS failures,
       count(*) FILTER (WHERE s = 1) AS in_progress, avg(d) AS avg_seconds, max(d) AS max_seconds,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY d) AS p95_seconds
FROM (
    SELECT workflow_process_activity_log_status_id AS s, EXTRACT(EPOCH FROM (completed_at - started_at))::double precision AS d
    FROM workflow_process_activity_logs
    WHERE completed_at IS NULL OR completed_at >= %(since)s
) AS l
"""

#: Shaped as the mirror's Success write (INSERT ... ON CONFLICT on the attempt's key, closing
#: only a row still In Progress), for every attempt In Progress.
WORKERS_SUCCESS = """
INSERT INTO workflow_process_activity_logs AS l
    (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
SELECT workflow_process_id, workflow_activity_id, 2, started_at, now(), step, attempt, temporal_run_id
FROM workflow_process_activity_logs WHERE workflow_process_activity_log_status_id = 1
ON CONFLICT ON CONSTRAINT workflow_process_activity_logs_attempt_key DO UPDATE
SET workflow_process_activity_log_status_id = excluded.workflow_process_activity_log_status_id, completed_at = excluded.completed_at
WHERE l.workflow_process_activity_log_status_id = 1
"""

OUTCOMES = "SELECT attempts, successes, failures, in_progress, avg_seconds, max_seconds, p50_seconds, p95_seconds FROM workflow_activity_outcomes"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = sqlalchemy_url(url)
    return config


def figures(conn: psycopg.Connection, query: str, params: dict | None = None) -> dict:
    cursor = conn.execute(query, params or {})
    row = cursor.fetchone()
    assert row is not None
    return dict(zip([c.name for c in cursor.description], row, strict=True))


def assert_alike(rolled: dict, exact: dict) -> None:
    for key in ("attempts", "successes", "failures", "in_progress"):
        assert rolled[key] == exact[key], (key, rolled, exact)
    assert rolled["avg_seconds"] == pytest.approx(exact["avg_seconds"], rel=1e-9)
    assert rolled["max_seconds"] == pytest.approx(exact["max_seconds"], rel=1e-9)
    for key in ("p50_seconds", "p95_seconds"):
        # The bucket's middle: within 2^(1/8) of every duration in it, and the exact figure
        # (interpolated) may lie in the next bucket.
        assert exact[key] / 1.2 - 0.001 <= rolled[key] <= exact[key] * 1.2 + 0.001, (key, rolled, exact)


def test_the_rollup_matches_the_attempt_rows_after_the_migration_and_as_attempts_close(database_url):
    with database_of_its_own(database_url, "rollups") as url:
        command.downgrade(alembic_config(url), "0007")  # as a database before the rollup
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            conn.execute(FILL)
        assert upgrade(url) == "0011"
        everything = {"since": datetime(1970, 1, 1, tzinfo=UTC)}
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM workflow_activity_hours").fetchone()[0] > 1
            assert_alike(figures(conn, OUTCOMES), figures(conn, EXACT, everything))

            # Attempts that open, then close; closed rows written again; one inserted closed.
            conn.execute(
                "INSERT INTO workflow_process_activity_logs (workflow_process_id, workflow_activity_id, "
                "workflow_process_activity_log_status_id, started_at, step, attempt, temporal_run_id) "
                "SELECT workflow_process_id, workflow_activity_id, 1, now() - interval '2 s', 2, 1, 'run' "
                "FROM workflow_process_activity_logs WHERE workflow_process_id % 4 = 0"
            )
            opened = figures(conn, OUTCOMES)
            assert opened["in_progress"] == 15
            assert_alike(opened, figures(conn, EXACT, everything))
            conn.execute(
                "UPDATE workflow_process_activity_logs SET workflow_process_activity_log_status_id = 2, completed_at = now() "
                "WHERE workflow_process_activity_log_status_id = 1 AND workflow_process_id % 8 = 0"
            )
            conn.execute("UPDATE workflow_process_activity_logs SET error = 'read again' WHERE workflow_process_activity_log_status_id = 2")
            conn.execute(
                "INSERT INTO workflow_process_activity_logs (workflow_process_id, workflow_activity_id, "
                "workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id) "
                "SELECT workflow_process_id, workflow_activity_id, 3, now() - interval '90 s', now(), 3, 1, 'run' "
                "FROM workflow_process_activity_logs WHERE workflow_process_id = (SELECT min(id) FROM workflow_processes) LIMIT 1"
            )
            after = figures(conn, OUTCOMES)
            assert (after["in_progress"], after["attempts"]) == (8, 76)
            assert_alike(after, figures(conn, EXACT, everything))

            # A Success as the workers write it: an insert that finds the attempt's row In
            # Progress and closes it; written twice, as a retried write is, it counts once.
            for _ in range(2):
                conn.execute(WORKERS_SUCCESS)
            closed = figures(conn, OUTCOMES)
            assert (closed["in_progress"], closed["successes"] + closed["failures"]) == (0, 76)
            assert_alike(closed, figures(conn, EXACT, everything))

            # The report's window: the attempts closed since the hour it begins in.
            since = datetime.now(UTC) - timedelta(minutes=30)
            windowed = conn.execute(
                ACTIVITY_OUTCOMES_SINCE.replace("CAST(:since AS timestamptz)", "CAST(%(since)s AS timestamptz)"), {"since": since}
            )
            row = dict(zip([c.name for c in windowed.description], windowed.fetchone(), strict=True))
            hour = since.replace(minute=0, second=0, microsecond=0)
            exact = figures(conn, EXACT, {"since": hour})
            for key in ("successes", "failures"):
                assert row[key] == exact[key], (key, row, exact)

