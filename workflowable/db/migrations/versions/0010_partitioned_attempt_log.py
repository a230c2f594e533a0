"""The attempt log partitioned by month of started_at, so that retention drops whole months
(db/partitions.py) instead of deleting rows.

A database with attempts keeps them in one partition, `workflow_process_activity_logs_before_YYYY_MM`,
that holds every attempt started before the month after the upgrade (it is dropped whole once
that month is older than what `db prune` keeps); an empty log is replaced by monthly partitions.
Monthly partitions are created for the months up to 3 after the current one.

The primary key becomes (id, started_at) and the attempt's unique key gains started_at, as
Postgres asks of every unique key of a partitioned table. The tokens' reference to the attempt
that wrote them loses its foreign key (a partition dropped for retention takes its attempts while
a live process keeps its tokens). The views and triggers on the log are made again on the new
table, as they were.

Cost: two unique indexes built on the existing attempts and one pass to check their range, about
0.9 s per million attempts (docs/performance.md), while writers of the attempt log wait (upgrade
at a quiet hour).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

LOG = "workflow_process_activity_logs"
LEGACY = "workflow_process_activity_logs_unpartitioned"
MONTHS_AHEAD = 3

#: The log's indexes at 0009, renamed on the table kept as a partition (the new table takes the names).
INDEXES = (
    "ix_workflow_process_activity_logs_activity_times",
    "ix_workflow_process_activity_logs_workflow_activity_id",
    "ix_workflow_process_activity_logs_workflow_process_acti_c7db",
    "ix_workflow_process_activity_logs_workflow_process_id",
)

COLUMNS = """
    created_at timestamp with time zone DEFAULT now(),
    updated_at timestamp with time zone DEFAULT now(),
    id bigint NOT NULL DEFAULT nextval('workflow_process_activity_logs_id_seq'),
    workflow_process_id bigint NOT NULL,
    workflow_activity_id bigint NOT NULL,
    workflow_process_activity_log_status_id bigint NOT NULL,
    started_at timestamp with time zone NOT NULL,
    completed_at timestamp with time zone,
    step integer NOT NULL,
    attempt integer NOT NULL,
    temporal_run_id character varying(64) NOT NULL,
    error text
"""

FOREIGN_KEYS = (
    "ADD CONSTRAINT workflow_process_activity_log_status FOREIGN KEY (workflow_process_activity_log_status_id) "
    "REFERENCES workflow_process_activity_log_statuses(id) ON DELETE CASCADE",
    "ADD CONSTRAINT workflow_process_activity_logs_workflow_activity_id_fkey FOREIGN KEY (workflow_activity_id) "
    "REFERENCES workflow_activities(id) ON DELETE CASCADE",
    "ADD CONSTRAINT workflow_process_activity_logs_workflow_process_id_fkey FOREIGN KEY (workflow_process_id) "
    "REFERENCES workflow_processes(id) ON DELETE CASCADE",
)

PLAIN_INDEXES = (
    f"CREATE INDEX ix_workflow_process_activity_logs_activity_times ON {LOG} (workflow_activity_id, started_at, completed_at)",
    f"CREATE INDEX ix_workflow_process_activity_logs_workflow_activity_id ON {LOG} (workflow_activity_id)",
    f"CREATE INDEX ix_workflow_process_activity_logs_workflow_process_acti_c7db ON {LOG} (workflow_process_activity_log_status_id)",
    f"CREATE INDEX ix_workflow_process_activity_logs_workflow_process_id ON {LOG} (workflow_process_id)",
)

TOKENS_FOREIGN_KEY = "workflow_process_tokens_workflow_process_activity_log_id_fkey"

TRIGGERS = (
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

#: The views that read the log, as they were at 0009 and are made again here.
VIEWS = {
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
    """,
}


def _month(when: datetime, later: int = 0) -> datetime:
    months = when.year * 12 + when.month - 1 + later
    return datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)


def _without_dependents() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    op.execute(f"DROP TRIGGER workflowable_roll_up_closed ON {LOG}")
    op.execute(f"DROP TRIGGER workflowable_roll_up_inserted ON {LOG}")


def _with_dependents() -> None:
    for statement in TRIGGERS:
        op.execute(statement)
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def upgrade() -> None:
    bind = op.get_bind()
    # No attempt is written while the table is replaced (a worker still running writes after).
    op.execute(f"LOCK TABLE {LOG} IN ACCESS EXCLUSIVE MODE")
    now: datetime = bind.exec_driver_sql("SELECT now()").scalar_one().astimezone(UTC)  # months are UTC's
    has_rows = bind.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {LOG})").scalar()
    _without_dependents()
    op.execute(f"ALTER TABLE workflow_process_tokens DROP CONSTRAINT {TOKENS_FOREIGN_KEY}")
    op.execute(f"ALTER SEQUENCE {LOG}_id_seq OWNED BY NONE")
    if has_rows:
        op.execute(f"ALTER TABLE {LOG} RENAME TO {LEGACY}")
        op.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT {LOG}_pkey")
        op.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT {LOG}_attempt_key")
        for n, index in enumerate(INDEXES):
            op.execute(f"ALTER INDEX {index} RENAME TO {LEGACY}_{n}")
    else:
        op.execute(f"DROP TABLE {LOG}")

    op.execute(
        f"""
        CREATE TABLE {LOG} ({COLUMNS},
            CONSTRAINT {LOG}_pkey PRIMARY KEY (id, started_at),
            CONSTRAINT {LOG}_attempt_key UNIQUE (workflow_process_id, temporal_run_id, step, attempt, started_at)
        ) PARTITION BY RANGE (started_at)
        """
    )
    for foreign_key in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {LOG} {foreign_key}")
    for statement in PLAIN_INDEXES:
        op.execute(statement)
    op.execute(f"ALTER SEQUENCE {LOG}_id_seq OWNED BY {LOG}.id")

    first = _month(now)
    if has_rows:
        # Attaching checks the rows' range and builds the two new unique keys on them; the other
        # indexes it finds there.
        first = _month(now, 1)
        op.execute(f"ALTER TABLE {LOG} ATTACH PARTITION {LEGACY} FOR VALUES FROM (MINVALUE) TO ('{first.isoformat()}')")
        op.execute(f"ALTER TABLE {LEGACY} RENAME TO {LOG}_before_{first:%Y_%m}")
    for later in range(MONTHS_AHEAD + 1):
        start, end = _month(first, later), _month(first, later + 1)
        if start <= _month(now, MONTHS_AHEAD):
            op.execute(
                f"CREATE TABLE {LOG}_{start:%Y_%m} PARTITION OF {LOG} FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
    _with_dependents()


def downgrade() -> None:
    # The rows copied into one plain table again (the partitions' files go with their table).
    _without_dependents()
    op.execute(f"CREATE TABLE {LEGACY} ({COLUMNS})")
    op.execute(f"INSERT INTO {LEGACY} SELECT * FROM {LOG}")
    op.execute(f"ALTER SEQUENCE {LOG}_id_seq OWNED BY NONE")
    op.execute(f"DROP TABLE {LOG}")
    op.execute(f"ALTER TABLE {LEGACY} RENAME TO {LOG}")
    op.execute(f"ALTER TABLE {LOG} ADD CONSTRAINT {LOG}_pkey PRIMARY KEY (id)")
    op.execute(f"ALTER TABLE {LOG} ADD CONSTRAINT {LOG}_attempt_key UNIQUE (workflow_process_id, temporal_run_id, step, attempt)")
    # Tokens whose attempt went with a month that `db prune` dropped no longer name it.
    op.execute(
        f"UPDATE workflow_process_tokens t SET workflow_process_activity_log_id = NULL WHERE workflow_process_activity_log_id IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {LOG} l WHERE l.id = t.workflow_process_activity_log_id)"
    )
    for foreign_key in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {LOG} {foreign_key}")
    for statement in PLAIN_INDEXES:
        op.execute(statement)
    op.execute(f"ALTER SEQUENCE {LOG}_id_seq OWNED BY {LOG}.id")
    op.execute(
        f"ALTER TABLE workflow_process_tokens ADD CONSTRAINT {TOKENS_FOREIGN_KEY} FOREIGN KEY (workflow_process_activity_log_id) "
        f"REFERENCES {LOG}(id) ON DELETE CASCADE"
    )
    _with_dependents()
