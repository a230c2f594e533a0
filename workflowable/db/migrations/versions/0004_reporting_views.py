"""Reporting views (attempt durations, outcomes per activity, processes per status, processes
per status and workflow) and an index that lets the per-activity duration queries read the
index alone.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

from workflowable.db.reporting_sql import VIEWS

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_workflow_process_activity_logs_activity_times",
        "workflow_process_activity_logs",
        ["workflow_activity_id", "started_at", "completed_at"],
    )
    for name, body in VIEWS.items():
        op.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index("ix_workflow_process_activity_logs_activity_times", table_name="workflow_process_activity_logs")
