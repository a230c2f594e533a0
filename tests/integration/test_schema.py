from __future__ import annotations

import sqlalchemy as sa

from workflowable.db.database import upgrade


async def test_status_tables_hold_the_seeded_ids(client):
    async with client.engine.connect() as conn:
        seeded = {
            table: (await conn.execute(sa.text(f"SELECT id, name FROM {table} ORDER BY id"))).all()
            for table in ("workflow_statuses", "workflow_process_statuses", "workflow_process_activity_log_statuses")
        }
    assert seeded["workflow_statuses"] == [(1, "Draft"), (2, "Active"), (3, "Deactivated"), (4, "Archived")]
    assert [name for _, name in seeded["workflow_process_statuses"]] == [
        "Created", "Pending", "Dispatched", "Running", "Paused", "Failed", "Completed", "Cancelled",
    ]
    assert seeded["workflow_process_activity_log_statuses"] == [(1, "In Progress"), (2, "Success"), (3, "Failure")]


async def test_documented_tables_and_columns_exist(client):
    expected = {
        "workflow_events": {"name", "class_name", "description"},
        "workflows": {"name", "workflow_event_id", "workflow_status_id", "retry_interval", "workflow_priority_id"},
        "workflow_priorities": {"name", "priority", "description"},
        "workflow_activity_types": {"name", "class_name"},
        "workflow_activities": {"workflow_activity_type_id", "workflow_id", "name", "description"},
        "workflow_activity_parameters": {"workflow_activity_id", "key", "value"},
        "workflow_transitions": {"name", "workflow_id", "from_workflow_activity_id", "to_workflow_activity_id", "ordinal"},
        "workflow_condition_types": {"name", "class_name"},
        "workflow_conditions": {"workflow_transition_id", "workflow_condition_type_id", "ordinal"},
        "workflow_condition_parameters": {"workflow_condition_id", "key", "value"},
        "workflow_processes": {
            "workflow_id", "workflow_process_status_id", "last_workflow_activity_id",
            "first_run_at", "last_run_at", "next_run_at", "completed_at",
        },
        "workflow_process_tokens": {"workflow_process_id", "workflow_activity_id", "key", "value"},
        "workflow_process_activity_logs": {
            "workflow_process_id", "workflow_activity_id", "workflow_process_activity_log_status_id", "started_at", "completed_at",
        },
    }
    async with client.engine.connect() as conn:
        for table, columns in expected.items():
            found = await conn.run_sync(lambda sync, table=table: {c["name"] for c in sa.inspect(sync).get_columns(table)})
            assert columns | {"id", "created_at", "updated_at"} <= found, table


async def test_upgrading_twice_changes_nothing(database_url, client):
    upgrade(database_url)
    async with client.engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM workflow_process_statuses")) == 8
        assert await conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0006"
