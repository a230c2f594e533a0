"""The SQL of reporting: the views the migrations create, and the queries docs/reporting.md
documents. Plain SQL on purpose: it is what a reporting user reads and runs."""

from __future__ import annotations

#: View name -> its SELECT, as the schema has them now. Migration 0004 created them from its own
#: copy; a change here needs a new migration (tests/integration/test_schema.py says so).
VIEWS: dict[str, str] = {
    # One row per attempt, with names and its duration in seconds (NULL while In Progress).
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
    # Per activity: attempts by outcome, failure rate, and duration statistics of closed attempts.
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
    # Processes per status (all eight, zero included).
    "workflow_process_status_counts": """
        SELECT s.id AS workflow_process_status_id,
               s.name AS status,
               count(p.id) AS processes
        FROM workflow_process_statuses s
        LEFT JOIN workflow_processes p ON p.workflow_process_status_id = s.id
        GROUP BY s.id, s.name
    """,
    # Processes per workflow and status, with how long the oldest has been in that status.
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

#: The seed documentation's example queries 1 and 2, verbatim but for the bound parameter.
ATTEMPTS_OF_PROCESS = "SELECT * FROM workflow_process_activity_logs WHERE workflow_process_id = :workflow_process_id"
FAILED_ATTEMPTS = "SELECT * FROM workflow_process_activity_logs WHERE workflow_process_activity_log_status_id = :failure_status_id"
#: Query 3 in its Postgres form: MySQL's TIMESTAMPDIFF(SECOND, a, b) is EXTRACT(EPOCH FROM b - a).
AVERAGE_DURATION = (
    "SELECT AVG(EXTRACT(EPOCH FROM (completed_at - started_at))) AS avg_execution_time "
    "FROM workflow_process_activity_logs WHERE workflow_activity_id = :activity_id"
)
