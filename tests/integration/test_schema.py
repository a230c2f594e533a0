from __future__ import annotations

import re

import sqlalchemy as sa

from tests.conftest import database_of_its_own
from workflowable.db.database import upgrade
from workflowable.db.reporting_sql import ROLLUP, VIEWS


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
        assert await conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0011"


#: The catalog of a database, as Postgres itself prints it: every index and every constraint of
#: the tables (the attempt log's partitions left out: they are its storage, made by
#: db/partitions.py, and carry the log's own indexes).
CATALOG = """
    SELECT 'index', i.indexname, i.indexdef
    FROM pg_indexes i JOIN pg_class c ON c.relname = i.tablename AND c.relnamespace = current_schema()::regnamespace
    WHERE i.schemaname = current_schema() AND NOT c.relispartition AND c.relname <> 'alembic_version'
    UNION ALL
    SELECT 'constraint', c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
    WHERE c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition AND c.relname <> 'alembic_version'
    ORDER BY 1, 2
"""


def test_the_migrations_give_exactly_the_schema_the_models_declare(database_url):
    """A fresh `db upgrade` against the models: Alembic's own comparison (tables, columns, types,
    nullability, indexes, unique and foreign keys) finds no difference, and every index and
    constraint prints the same as in a database the models create (partial indexes' predicates,
    hash indexes, checks, which Alembic does not compare). The migrations carry the SQL and seeds
    they applied, so editing the models or the views cannot change what an applied migration
    did: a change needs a new migration, and this test says so."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from workflowable.db.models import SQLModel

    with database_of_its_own(database_url, "migrated") as migrated, database_of_its_own(database_url, "declared", migrated=False) as declared:
        engine = sa.create_engine(migrated)
        try:
            with engine.connect() as conn:
                partitions = set(conn.execute(sa.text("SELECT relname FROM pg_class WHERE relispartition")).scalars())
                context = MigrationContext.configure(
                    conn,
                    opts={
                        "compare_type": True,
                        "compare_server_default": False,
                        "include_name": lambda name, kind, parents: not (kind == "table" and name in partitions),
                    },
                )
                found = compare_metadata(context, SQLModel.metadata)
                migrated_catalog = conn.execute(sa.text(CATALOG)).all()
                views = set(conn.execute(sa.text("SELECT viewname FROM pg_views WHERE schemaname = current_schema()")).scalars())
                # Each view as Postgres stores it, against reporting_sql.VIEWS made into
                # temporary views (Postgres normalizes both the same way); rolled back.
                changed = []
                for name, body in VIEWS.items():
                    conn.execute(sa.text(f"CREATE TEMPORARY VIEW now_{name} AS {body}"))
                    stored, now = conn.execute(sa.text(f"SELECT pg_get_viewdef('{name}'::regclass), pg_get_viewdef('now_{name}'::regclass)")).one()
                    if stored != now:
                        changed.append(name)
                conn.rollback()
        finally:
            engine.dispose()
        engine = sa.create_engine(declared)
        try:
            SQLModel.metadata.create_all(engine)
            with engine.connect() as conn:
                declared_catalog = conn.execute(sa.text(CATALOG)).all()
        finally:
            engine.dispose()
    assert found == [], found
    assert views == set(VIEWS), views
    assert changed == [], f"views changed in reporting_sql.VIEWS without a migration: {changed}"
    only_migrated = sorted(set(migrated_catalog) - set(declared_catalog))
    only_declared = sorted(set(declared_catalog) - set(migrated_catalog))
    assert (only_migrated, only_declared) == ([], []), (only_migrated, only_declared)


async def test_the_rollup_functions_and_triggers_are_the_ones_reporting_sql_declares(client):
    """As for the views: each function's body as stored against reporting_sql.ROLLUP's, and the
    attempt log's triggers by name; a change there needs a new migration."""
    declared_bodies = {
        re.search(r"CREATE FUNCTION (\w+)\(", statement).group(1): statement.split("$$")[1]
        for statement in ROLLUP
        if "CREATE FUNCTION" in statement
    }
    declared_triggers = {re.search(r"CREATE TRIGGER (\w+) ", statement).group(1) for statement in ROLLUP if "CREATE TRIGGER" in statement}
    async with client.engine.connect() as conn:
        stored = dict((await conn.execute(sa.text("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'workflowable\\_%'"))).all())
        triggers = set(
            (
                await conn.execute(
                    sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'workflow_process_activity_logs'::regclass AND NOT tgisinternal")
                )
            ).scalars()
        )
    assert stored == declared_bodies, "functions changed in reporting_sql.ROLLUP without a migration"
    assert triggers == declared_triggers, triggers
