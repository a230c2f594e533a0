"""`prune`: finished processes that ended before the cutoff go, with every row of theirs; live
ones and recent ones stay. In a database of its own, filled by SQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from pydantic import SecretStr

from tests.conftest import database_of_its_own, one_workflow
from workflowable import InvalidArgument, Workflowable
from workflowable.db.database import Database

FILL = one_workflow("Old") + """, made AS (
    -- (status, ended days ago): old Completed, old Failed, old Cancelled, recent Completed, old Running, old Pending
    INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue, completed_at, updated_at, created_at)
    SELECT activity.workflow_id, s.status, 'q',
           CASE WHEN s.status = 7 THEN now() - s.days * interval '1 day' END,
           now() - s.days * interval '1 day', now() - 400 * interval '1 day'
    FROM activity, (VALUES (1, 7, 100), (2, 6, 100), (3, 8, 100), (4, 7, 1), (5, 4, 100), (6, 2, 100)) AS s(n, status, days)
    ORDER BY s.n
    RETURNING id
), logs AS (
    INSERT INTO workflow_process_activity_logs
        (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
    SELECT made.id, activity.id, 2, now() - interval '400 days', now() - interval '400 days', 1, 1, 'run' FROM made, activity
), inputs AS (
    INSERT INTO workflow_process_tokens (workflow_process_id, key, value) SELECT made.id, 'k', 'v' FROM made
)
INSERT INTO workflow_process_evaluations (workflow_process_id, cause, details) SELECT made.id, 'woken', '[]' FROM made
"""


async def counts(engine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            table: int(await conn.scalar(sa.text(f"SELECT count(*) FROM {table}")))
            for table in ("workflow_processes", "workflow_process_activity_logs", "workflow_process_tokens", "workflow_process_evaluations")
        }


async def test_prune_deletes_old_finished_processes_and_their_rows_only(client, settings, database_url):
    with database_of_its_own(database_url, "prune") as url:
        database = Database.open(url)
        try:
            async with database.engine.begin() as conn:
                await conn.execute(sa.text(FILL))
            own = Workflowable(settings.model_copy(update={"database_url": SecretStr(url)}), database, client.temporal)
            assert (await own.prune(timedelta(days=30), dry_run=True)).found == 3
            assert await counts(database.engine) == dict.fromkeys(await counts(database.engine), 6), "a dry run deletes nothing"
            told: list[int] = []
            result = await own.prune(timedelta(days=30), batch=1, progress=told.append)
            assert (result.found, result.deleted, told) == (3, 3, [1, 1, 1])
            async with database.engine.connect() as conn:
                left = sorted((await conn.execute(sa.text("SELECT workflow_process_status_id FROM workflow_processes"))).scalars())
            assert left == [2, 4, 7], "live processes, however old, and the recent Completed one stay"
            assert await counts(database.engine) == dict.fromkeys(await counts(database.engine), 3), "their rows went with them"
            assert (await own.prune(timedelta(days=30))).deleted == 0, "a second run finds nothing"
            for bad in (timedelta(0), 30):
                try:
                    await own.prune(bad)  # type: ignore[arg-type]
                except InvalidArgument:
                    continue
                raise AssertionError(f"prune({bad!r}) was accepted")
        finally:
            await database.close()
