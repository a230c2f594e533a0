"""The report's transitions taken: each attempt row names the activity its process came from
(migration 0011); rows written before that name none, and for those the process's previous
step does, as before. Both kinds in one log, made by SQL in a database of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.conftest import one_workflow, opened_database_of_its_own
from workflowable.db.partitions import ensure_partitions
from workflowable.db.reporting_sql import STEPS_TAKEN, STEPS_TAKEN_ALL

# One activity that leads back to itself, so each pair is (start, step) or (step, step).
# Process 1: two rows from before 0011 (no previous activity named): its step 2 is found
# through its step 1's Success. Process 2: rows naming it; its step 1 failed, so only the row's
# own name gives (step, step): a report that looked at the previous step would say (start,
# step). Process 3: the same as 2, but three days ago.
FILL = one_workflow("Taken") + """, made AS (
    INSERT INTO workflow_processes (id, workflow_id, workflow_process_status_id, queue)
    SELECT n, activity.workflow_id, 4, 'q' FROM activity, generate_series(1, 3) AS n
    RETURNING id
)
INSERT INTO workflow_process_activity_logs
    (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, step, attempt,
     temporal_run_id, from_workflow_activity_id)
SELECT s.process, activity.id, s.status, now() - s.ago * interval '1 hour', s.step, 1, 'run',
       CASE WHEN s.named THEN activity.id END
FROM made JOIN (VALUES (1, 1, 2, 2, false), (1, 2, 1, 1, false), (2, 1, 3, 2, false), (2, 2, 1, 1, true),
                       (3, 1, 3, 72, false), (3, 2, 1, 71, true)) AS s(process, step, status, ago, named)
  ON s.process = made.id, activity
"""


async def test_transitions_taken_come_from_each_row_and_from_the_previous_step_before_0011(database_url):
    async with opened_database_of_its_own(database_url, "taken") as (_, database):
        await ensure_partitions(database.engine, since=datetime.now(UTC) - timedelta(days=4))
        async with database.engine.begin() as conn:
            await conn.execute(sa.text(FILL))
            step = await conn.scalar(sa.text("SELECT id FROM workflow_activities"))
            everything = {(r.from_activity_id, r.to_activity_id): r.taken for r in await conn.execute(sa.text(STEPS_TAKEN_ALL))}
            since = {"since": datetime.now(UTC) - timedelta(days=1)}
            today = {(r.from_activity_id, r.to_activity_id): r.taken for r in await conn.execute(sa.text(STEPS_TAKEN), since)}
    assert everything == {(None, step): 3, (step, step): 3}, everything
    assert today == {(None, step): 2, (step, step): 2}, today
