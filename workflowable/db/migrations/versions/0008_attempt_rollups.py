"""The attempt log rolled up as attempts close, so that reports need not read every attempt.

workflow_activity_hours: per activity, hour (of completed_at, in UTC) and duration bucket, the
attempts that closed (successes, failures), the sum and the longest of their durations. Two
triggers on workflow_process_activity_logs keep it current: a row trigger adds each attempt an
update closes, a statement trigger the attempts a statement inserts closed (a bulk load). The
attempts already closed are added here, while the triggers' lock holds writers back, so that
none is counted twice or missed: on a large log, upgrade at a quiet hour (docs/deployment.md). The workflow_activity_outcomes view reads the rolled-up hours.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: The functions and triggers this migration created, as it created them (reporting_sql.ROLLUP
#: holds them as they are now).
ROLLUP: tuple[str, ...] = (
    """
    CREATE FUNCTION workflowable_attempt_seconds(started_at timestamptz, completed_at timestamptz) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT greatest(EXTRACT(EPOCH FROM (completed_at - started_at))::double precision, 0)
    $$
    """,
    """
    CREATE FUNCTION workflowable_duration_bucket(seconds double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT CASE WHEN seconds < 0.001 THEN 0 ELSE least(127, 1 + floor(4 * ln(seconds * 1000) / ln(2)))::smallint END
    $$
    """,
    """
    CREATE FUNCTION workflowable_bucket_seconds(bucket smallint) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT CASE WHEN bucket = 0 THEN 0.0005 ELSE power(2, (bucket - 0.5) / 4.0) / 1000 END
    $$
    """,
    """
    CREATE FUNCTION workflowable_add_to_hours(
        activity_id bigint, closed_at timestamptz, bucket smallint, successes bigint, failures bigint, seconds double precision,
        max_seconds double precision
    ) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO workflow_activity_hours AS h (workflow_activity_id, hour, bucket, successes, failures, seconds, max_seconds)
        VALUES (activity_id, date_trunc('hour', closed_at, 'UTC'), bucket, successes, failures, seconds, max_seconds)
        ON CONFLICT (workflow_activity_id, hour, bucket) DO UPDATE
        SET successes = h.successes + excluded.successes,
            failures = h.failures + excluded.failures,
            seconds = h.seconds + excluded.seconds,
            max_seconds = greatest(h.max_seconds, excluded.max_seconds)
    $$
    """,
    """
    CREATE FUNCTION workflowable_roll_up_closed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        seconds double precision := workflowable_attempt_seconds(NEW.started_at, NEW.completed_at);
    BEGIN
        PERFORM workflowable_add_to_hours(
            NEW.workflow_activity_id, NEW.completed_at, workflowable_duration_bucket(seconds),
            (NEW.workflow_process_activity_log_status_id = 2)::int, (NEW.workflow_process_activity_log_status_id = 3)::int,
            seconds, seconds
        );
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION workflowable_roll_up_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM workflowable_add_to_hours(activity_id, hour, bucket, successes, failures, seconds, max_seconds)
        FROM (
            SELECT workflow_activity_id AS activity_id, date_trunc('hour', completed_at, 'UTC') AS hour,
                   workflowable_duration_bucket(seconds) AS bucket,
                   count(*) FILTER (WHERE workflow_process_activity_log_status_id = 2) AS successes,
                   count(*) FILTER (WHERE workflow_process_activity_log_status_id = 3) AS failures,
                   sum(seconds) AS seconds, max(seconds) AS max_seconds
            FROM (
                SELECT n.*, workflowable_attempt_seconds(n.started_at, n.completed_at) AS seconds
                FROM new_rows n
                WHERE n.workflow_process_activity_log_status_id IN (2, 3) AND n.completed_at IS NOT NULL
            ) AS closed
            GROUP BY 1, 2, 3
            ORDER BY 1, 2, 3
        ) AS added;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER workflowable_roll_up_closed AFTER UPDATE OF workflow_process_activity_log_status_id ON workflow_process_activity_logs
    FOR EACH ROW WHEN (
        OLD.workflow_process_activity_log_status_id = 1 AND NEW.workflow_process_activity_log_status_id IN (2, 3) AND NEW.completed_at IS NOT NULL
    ) EXECUTE FUNCTION workflowable_roll_up_closed()
    """,
    """
    CREATE TRIGGER workflowable_roll_up_inserted AFTER INSERT ON workflow_process_activity_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION workflowable_roll_up_inserted()
    """,
)

#: The view as this migration made it, and as 0004 had made it (for the downgrade).
OUTCOMES = """
        WITH buckets AS (
            SELECT workflow_activity_id, bucket, sum(successes) AS successes, sum(failures) AS failures,
                   sum(seconds) AS seconds, max(max_seconds) AS max_seconds
            FROM workflow_activity_hours
            GROUP BY workflow_activity_id, bucket
        ), ranked AS (
            SELECT b.*,
                   sum(successes + failures) OVER (PARTITION BY workflow_activity_id ORDER BY bucket) AS up_to,
                   sum(successes + failures) OVER (PARTITION BY workflow_activity_id) AS closed
            FROM buckets b
        ), closed AS (
            SELECT workflow_activity_id,
                   sum(successes)::bigint AS successes,
                   sum(failures)::bigint AS failures,
                   sum(seconds) AS seconds,
                   max(max_seconds) AS max_seconds,
                   min(bucket) FILTER (WHERE up_to >= 0.5 * closed) AS p50_bucket,
                   min(bucket) FILTER (WHERE up_to >= 0.95 * closed) AS p95_bucket
            FROM ranked
            GROUP BY workflow_activity_id
        ), open AS (
            SELECT workflow_activity_id, count(*) AS in_progress
            FROM workflow_process_activity_logs
            WHERE workflow_process_activity_log_status_id = 1
            GROUP BY workflow_activity_id
        )
        SELECT a.workflow_id,
               w.name AS workflow_name,
               a.id AS workflow_activity_id,
               a.name AS activity_name,
               coalesce(c.successes + c.failures, 0) + coalesce(o.in_progress, 0) AS attempts,
               coalesce(c.successes, 0) AS successes,
               coalesce(c.failures, 0) AS failures,
               coalesce(o.in_progress, 0) AS in_progress,
               c.failures::double precision / NULLIF(c.successes + c.failures, 0) AS failure_rate,
               c.seconds / NULLIF(c.successes + c.failures, 0) AS avg_seconds,
               least(workflowable_bucket_seconds(c.p50_bucket), c.max_seconds) AS p50_seconds,
               least(workflowable_bucket_seconds(c.p95_bucket), c.max_seconds) AS p95_seconds,
               c.max_seconds
        FROM workflow_activities a
        JOIN workflows w ON w.id = a.workflow_id
        LEFT JOIN closed c ON c.workflow_activity_id = a.id
        LEFT JOIN open o ON o.workflow_activity_id = a.id
"""
OUTCOMES_BEFORE = """
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
    """

#: The attempts closed before, added in one pass (the upgrade's triggers hold writers back meanwhile).
BACKFILL = """
    SELECT workflowable_add_to_hours(activity_id, hour, bucket, successes, failures, seconds, max_seconds)
    FROM (
        SELECT workflow_activity_id AS activity_id, date_trunc('hour', completed_at, 'UTC') AS hour,
               workflowable_duration_bucket(seconds) AS bucket,
               count(*) FILTER (WHERE workflow_process_activity_log_status_id = 2) AS successes,
               count(*) FILTER (WHERE workflow_process_activity_log_status_id = 3) AS failures,
               sum(seconds) AS seconds, max(seconds) AS max_seconds
        FROM (
            SELECT l.*, workflowable_attempt_seconds(l.started_at, l.completed_at) AS seconds
            FROM workflow_process_activity_logs l
            WHERE l.workflow_process_activity_log_status_id IN (2, 3) AND l.completed_at IS NOT NULL
        ) AS closed
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
    ) AS added
"""


def upgrade() -> None:
    op.create_table(
        "workflow_activity_hours",
        sa.Column(
            "workflow_activity_id", sa.BigInteger, sa.ForeignKey("workflow_activities.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("bucket", sa.SmallInteger, primary_key=True),
        sa.Column("successes", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.Float(53), nullable=False),
        sa.Column("max_seconds", sa.Float(53), nullable=False),
    )
    op.create_index("ix_workflow_activity_hours_hour", "workflow_activity_hours", ["hour"])
    for statement in ROLLUP:
        op.execute(statement)
    op.execute(BACKFILL)
    op.execute("DROP VIEW workflow_activity_outcomes")
    op.execute(f"CREATE VIEW workflow_activity_outcomes AS {OUTCOMES}")


def downgrade() -> None:
    op.execute("DROP VIEW workflow_activity_outcomes")
    op.execute(f"CREATE VIEW workflow_activity_outcomes AS {OUTCOMES_BEFORE}")
    op.execute("DROP TRIGGER workflowable_roll_up_closed ON workflow_process_activity_logs")
    op.execute("DROP TRIGGER workflowable_roll_up_inserted ON workflow_process_activity_logs")
    op.execute("DROP FUNCTION workflowable_roll_up_inserted(), workflowable_roll_up_closed()")
    op.execute(
        "DROP FUNCTION workflowable_add_to_hours(bigint, timestamptz, smallint, bigint, bigint, double precision, double precision)"
    )
    op.execute("DROP FUNCTION workflowable_bucket_seconds(smallint), workflowable_duration_bucket(double precision)")
    op.execute("DROP FUNCTION workflowable_attempt_seconds(timestamptz, timestamptz)")
    op.drop_table("workflow_activity_hours")
