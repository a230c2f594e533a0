"""Maintenance queries stay on index paths as the mirror grows: each is EXPLAINed against a
database of its own holding enough finished processes and attempt rows for the planner to care
(a sequential scan of a few hundred rows is what it rightly picks for a small table), and a
sequential scan of the process or attempt table fails the test.

The views over all history are not listed: the per-activity one reads the rolled-up hours, the
others count processes by status.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from tests.conftest import database_of_its_own, one_workflow
from workflowable.db import reporting_sql, retention
from workflowable.db.database import create_engine
from workflowable.db.mirror import TRIGGER, due_batch, due_count
from workflowable.db.partitions import ensure_partitions
from workflowable.db.reconcile import OPEN_ATTEMPTS, to_check

#: Finished processes and their attempt rows put in first (about 60 MB; filled in a few seconds).
FINISHED, ATTEMPTS_EACH = 200_000, 2
BIG_TABLES = {"workflow_processes", "workflow_process_activity_logs", "workflow_process_tokens"}


@pytest.fixture(scope="module")
async def grown(database_url: str):
    """An engine on a database with one workflow, FINISHED Completed processes with their
    attempts, a few live ones and a few attempts left In Progress, analyzed."""
    with database_of_its_own(database_url, "plans") as url:
        engine = create_engine(url)
        try:
            await ensure_partitions(engine, since=datetime.now(UTC) - timedelta(days=1))  # the fill's attempts are a minute old
            async with engine.begin() as conn:
                await conn.execute(sa.text(FILL), {"finished": FINISHED, "each": ATTEMPTS_EACH})
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(sa.text("ANALYZE"))
            yield engine
        finally:
            await engine.dispose()


FILL = one_workflow("Grown") + """, made AS (
    INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, last_workflow_activity_id, queue, next_run_at, completed_at)
    SELECT activity.workflow_id, CASE WHEN n % 1000 = 0 THEN 2 ELSE 7 END, activity.id, 'grown', now(), now()
    FROM activity, generate_series(1, :finished) AS n
    RETURNING id, workflow_process_status_id
), business_keys AS (
    INSERT INTO workflow_process_tokens (workflow_process_id, key, value)
    SELECT made.id, 'order_id', CAST(made.id AS text) FROM made
), released AS (
    INSERT INTO workflow_events (name, class_name) VALUES ('Released', 'tests.Released') RETURNING id
), listener AS (
    INSERT INTO workflow_event_listeners (workflow_id, workflow_event_id, match)
    SELECT workflow.id, released.id, '{"order_id": "order_id"}' FROM workflow, released
)
INSERT INTO workflow_process_activity_logs
    (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id, started_at, completed_at, step, attempt, temporal_run_id)
SELECT made.id, activity.id, CASE WHEN made.id % 5000 = 0 AND attempt = :each THEN 1 ELSE 2 END,
       now() - interval '1 minute', now(), 1, attempt, 'run'
FROM made, activity, generate_series(1, :each) AS attempt
"""


def _windowed(query: str) -> str:
    """A report query over the last second, as text."""
    return query.replace("CAST(:since AS timestamptz)", "(now() - interval '1 second')").replace(":limit", "50")


def sql(statement: Any) -> str:
    return str(statement.compile(dialect=postgresql.psycopg.dialect(), compile_kwargs={"literal_binds": True}))


async def explain(engine: Any, query: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        plan = (await conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) {query}"))).scalar()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, relation) of every node of a plan."""
    found = [(plan.get("Node Type", ""), plan.get("Relation Name", ""))]
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


MAINTENANCE = {
    "reconcile: processes to compare": lambda: sql(to_check()),
    "reconcile: attempts left In Progress": lambda: sql(OPEN_ATTEMPTS),
    "reconcile: ended processes whose run is open": lambda: (
        "SELECT id, workflow_process_status_id FROM workflow_processes WHERE id IN (5, 17, 123456) AND workflow_process_status_id IN (7, 8)"
    ),
    "sweep: due count": lambda: sql(due_count()),
    "sweep: next batch": lambda: sql(due_batch(200, [])),
    "prune: finished processes that ended before a cutoff": lambda: (
        retention._ENDED_BEFORE.replace("CAST(:before AS timestamptz)", "now() - interval '30 days'").replace(":batch", "1000")
    ),
    # The report over a window (a recent one: the fill's attempts are a minute old).
    "report: outcomes per activity over a window": lambda: _windowed(reporting_sql.ACTIVITY_OUTCOMES_SINCE),
    "report: processes ended per hour": lambda: _windowed(reporting_sql.HOURLY_ENDINGS),
    "report: failed processes": lambda: _windowed(reporting_sql.FAILED_PROCESSES),
    "report: transitions taken": lambda: _windowed(reporting_sql.STEPS_TAKEN),
    "report: processes per status over a window": lambda: _windowed(reporting_sql.STATUS_COUNTS_SINCE),
    "report: stuck processes": lambda: reporting_sql.STUCK_PROCESSES.replace("CAST(:before AS timestamptz)", "now() - interval '1 hour'").replace(
        ":limit", "50"
    ),
    "process list: newest with a status": lambda: (
        "SELECT id FROM workflow_processes WHERE workflow_process_status_id = 2 ORDER BY id DESC LIMIT 50"
    ),
}


async def partitions_of_the_log(engine: Any) -> dict[str, bool]:
    """The attempt log's partitions, and whether each holds rows (as ANALYZE found)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT c.relname, c.reltuples > 0 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST('workflow_process_activity_logs' AS regclass)"
            )
        )
        return dict(rows.all())


@pytest.mark.parametrize("name", sorted(MAINTENANCE))
async def test_maintenance_queries_do_not_scan_the_big_tables(grown, name):
    # A partition of the attempt log counts as the log; a sequential scan of an empty one (a
    # month ahead) is what the planner rightly does with nothing in it.
    holding = await partitions_of_the_log(grown)
    found = [
        (node, "workflow_process_activity_logs" if relation in holding else relation)
        for node, relation in scans(await explain(grown, MAINTENANCE[name]()))
        if not (node == "Seq Scan" and relation in holding and not holding[relation])
    ]
    assert any(holding.values()), "the fill's attempts are in a partition"
    sequential = [relation for node, relation in found if node == "Seq Scan" and relation in BIG_TABLES]
    assert any(relation in BIG_TABLES for _, relation in found), f"{name} reads neither big table: {found}"
    assert not sequential, f"{name}: sequential scan of {sequential}; plan: {found}"


async def test_a_delivery_finds_its_processes_by_the_token_index(grown):
    """The trigger's statement, delivering an event to the processes whose order_id matches:
    candidates come from the token index, not from every process of the listening workflow."""
    params = {"class_path": "tests.Released", "queue": "q", "lock_key": None, "next_run_at": None, "keys": ["order_id"], "values": ["4000"]}
    async with grown.connect() as conn:
        plan = (await conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) {TRIGGER.text}"), params)).scalar()
    found = scans((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    sequential = [relation for node, relation in found if node == "Seq Scan" and relation in BIG_TABLES]
    assert not sequential, f"sequential scan of {sequential}; plan: {found}"
    assert any(relation == "workflow_process_tokens" and "Index" in node for node, relation in found), found


async def test_the_check_sees_a_sequential_scan(grown):
    """The query reconcile used before, one WHERE with OR, scans the whole process table."""
    before = (
        "SELECT id FROM workflow_processes WHERE workflow_process_status_id IN (1, 2, 3, 4, 5, 6) OR id IN "
        "(SELECT workflow_process_id FROM workflow_process_activity_logs WHERE workflow_process_activity_log_status_id = 1)"
    )
    assert ("Seq Scan", "workflow_processes") in scans(await explain(grown, before))
