"""The report's failed and stuck lists, on processes made by SQL in a database of their own: a
stuck process is live, and neither an attempt started nor an event was delivered since the
threshold; its own re-checks (which rewrite its row) do not count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.conftest import one_workflow, opened_database_of_its_own
from workflowable.db.partitions import ensure_partitions
from workflowable.db.reporting import build_report

FILL = one_workflow("Listed") + """, made AS (
    -- n: 1 stuck Pending (old attempt, row rewritten by re-checks just now), 2 Pending with a
    -- recent attempt, 3 Pending with a recent delivery, 4 Created to run tomorrow, 5 Paused long
    -- ago, 6 Failed two hours ago, 7 Failed two days ago
    INSERT INTO workflow_processes (id, workflow_id, workflow_process_status_id, queue, created_at, updated_at, next_run_at, error)
    SELECT s.n, activity.workflow_id, s.status, 'q', now() - interval '3 days', now() - s.changed * interval '1 hour',
           now() + s.next * interval '1 hour', s.error
    FROM activity, (VALUES (1, 2, 0, 1, NULL), (2, 2, 0, 1, NULL), (3, 2, 0, 1, NULL), (4, 1, 72, 24, NULL),
                           (5, 5, 72, 0, NULL), (6, 6, 2, 0, 'boom'), (7, 6, 48, 0, 'older boom')) AS s(n, status, changed, next, error)
    RETURNING id
), logs AS (
    INSERT INTO workflow_process_activity_logs
        (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
    SELECT made.id, activity.id, 2, now() - CASE WHEN made.id = 2 THEN interval '5 minutes' ELSE interval '2 days' END, now() - interval '1 day', 1, 1, 'run'
    FROM made, activity WHERE made.id <= 3
)
INSERT INTO workflow_process_deliveries (workflow_process_id, seq, workflow_event_id)
SELECT 3, 1, event.id FROM event
"""


async def test_the_stuck_and_failed_lists(database_url):
    async with opened_database_of_its_own(database_url, "lists") as (_, database):
        # the fill's attempts are 2 days old
        await ensure_partitions(database.engine, since=datetime.now(UTC) - timedelta(days=3))
        async with database.engine.begin() as conn:
            await conn.execute(sa.text(FILL))
        report = await build_report(database.engine, stuck_after=timedelta(hours=1))
        assert [row["id"] for row in report.stuck] == [1], report.stuck
        assert report.stuck[0]["status"] == "Pending" and report.stuck[0]["workflow_name"] == "listed"
        assert [(row["id"], row["error"]) for row in report.failed] == [(6, "boom"), (7, "older boom")], "newest first"
        async with database.engine.connect() as conn:
            now = await conn.scalar(sa.text("SELECT now()"))
        windowed = await build_report(database.engine, since=now - timedelta(days=1))
        assert [row["id"] for row in windowed.failed] == [6], "the window leaves out the older failure"
