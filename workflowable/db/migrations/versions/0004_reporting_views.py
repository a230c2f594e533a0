"""Reporting views (attempt durations, outcomes per activity, processes per status, processes
per status and workflow) and an index that lets the per-activity duration queries read the
index alone.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


#: The views as this migration created them (reporting_sql.VIEWS holds them as they are now;
#: a test checks that the database's views are those, so a change of a view comes with a migration).
VIEWS: dict[str, str] = {
    "workflow_process_activity_log_durations": """
        SELECT l.id,
               l.workflow_process_id,
               p.workflow_id,
               w.name AS workflow_name,
               l.workflow_activity_id,
               a.name AS activity_name,
               t.name AS activity_type,
               l.workflow_process_activity_log_status_id,
               s.name AS status,
               l.step,
               l.attempt,
               l.started_at,
               l.completed_at,
               EXTRACT(EPOCH FROM (l.completed_at - l.started_at))::double precision AS duration_seconds,
               l.error
        FROM workflow_process_activity_logs l
        JOIN workflow_process_activity_log_statuses s ON s.id = l.workflow_process_activity_log_status_id
        JOIN workflow_activities a ON a.id = l.workflow_activity_id
        JOIN workflow_activity_types t ON t.id = a.workflow_activity_type_id
        JOIN workflow_processes p ON p.id = l.workflow_process_id
        JOIN workflows w ON w.id = p.workflow_id
    """,
    "workflow_activity_outcomes": """
        SELECT a.workflow_id,
               w.name AS workflow_name,
               a.id AS workflow_activity_id,
               a.name AS activity_name,
               count(l.id) AS attempts,
               count(l.id) FILTER (WHERE l.workflow_process_activity_log_status_id = 2) AS successes,
               count(l.id) FILTER (WHERE l.workflow_process_activity_log_status_id = 3) AS failures,
               count(l.id) FILTER (WHERE l.workflow_process_activity_log_status_id = 1) AS in_progress,
               (count(l.id) FILTER (WHERE l.workflow_process_activity_log_status_id = 3))::double precision
                   / NULLIF(count(l.id) FILTER (WHERE l.workflow_process_activity_log_status_id IN (2, 3)), 0) AS failure_rate,
               avg(EXTRACT(EPOCH FROM (l.completed_at - l.started_at)))::double precision AS avg_seconds,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (l.completed_at - l.started_at)))::double precision AS p50_seconds,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (l.completed_at - l.started_at)))::double precision AS p95_seconds,
               max(EXTRACT(EPOCH FROM (l.completed_at - l.started_at)))::double precision AS max_seconds
        FROM workflow_activities a
        JOIN workflows w ON w.id = a.workflow_id
        LEFT JOIN workflow_process_activity_logs l ON l.workflow_activity_id = a.id
        GROUP BY a.workflow_id, w.name, a.id, a.name
    """,
    "workflow_process_status_counts": """
        SELECT s.id AS workflow_process_status_id,
               s.name AS status,
               count(p.id) AS processes
        FROM workflow_process_statuses s
        LEFT JOIN workflow_processes p ON p.workflow_process_status_id = s.id
        GROUP BY s.id, s.name
    """,
    "workflow_process_status_by_workflow": """
        SELECT w.id AS workflow_id,
               w.name AS workflow_name,
               s.id AS workflow_process_status_id,
               s.name AS status,
               count(p.id) AS processes,
               min(p.updated_at) AS oldest_change
        FROM workflow_processes p
        JOIN workflows w ON w.id = p.workflow_id
        JOIN workflow_process_statuses s ON s.id = p.workflow_process_status_id
        GROUP BY w.id, w.name, s.id, s.name
    """,
}


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
