"""The SQL of reporting: the views the migrations create, and the queries docs/reporting.md
documents. Plain SQL on purpose: it is what a reporting user reads and runs."""

from __future__ import annotations

from ..states import AttemptStatus, ProcessStatus

A = AttemptStatus
S = ProcessStatus

#: The live statuses, Created to Paused, as SQL.
_LIVE = ", ".join(str(int(s)) for s in ProcessStatus if not s.is_terminal)

#: The attempt log rolled up as attempts close (models.WorkflowActivityHourRow): functions that
#: give an attempt's duration, its bucket and a bucket's seconds (its geometric middle), and
#: add to one activity, hour (in UTC, whatever the session's time zone) and bucket; and the
#: triggers on workflow_process_activity_logs that add each attempt as it closes. An attempt
#: closed by an update (the workers', reconcile's) is added by a row trigger that runs only for
#: that update; rows inserted closed (a bulk load) by a statement trigger that sees the whole
#: statement's rows, so a load of millions costs one addition per activity, hour and bucket.
#: Migration 0008 created them from its own copy.
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
    f"""
    CREATE FUNCTION workflowable_roll_up_closed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        seconds double precision := workflowable_attempt_seconds(NEW.started_at, NEW.completed_at);
    BEGIN
        PERFORM workflowable_add_to_hours(
            NEW.workflow_activity_id, NEW.completed_at, workflowable_duration_bucket(seconds),
            (NEW.workflow_process_activity_log_status_id = {A.SUCCESS:d})::int, (NEW.workflow_process_activity_log_status_id = {A.FAILURE:d})::int,
            seconds, seconds
        );
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION workflowable_roll_up_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM workflowable_add_to_hours(activity_id, hour, bucket, successes, failures, seconds, max_seconds)
        FROM (
            SELECT workflow_activity_id AS activity_id, date_trunc('hour', completed_at, 'UTC') AS hour,
                   workflowable_duration_bucket(seconds) AS bucket,
                   count(*) FILTER (WHERE workflow_process_activity_log_status_id = {A.SUCCESS:d}) AS successes,
                   count(*) FILTER (WHERE workflow_process_activity_log_status_id = {A.FAILURE:d}) AS failures,
                   sum(seconds) AS seconds, max(seconds) AS max_seconds
            FROM (
                SELECT n.*, workflowable_attempt_seconds(n.started_at, n.completed_at) AS seconds
                FROM new_rows n
                WHERE n.workflow_process_activity_log_status_id IN ({A.SUCCESS:d}, {A.FAILURE:d}) AND n.completed_at IS NOT NULL
            ) AS closed
            GROUP BY 1, 2, 3
            ORDER BY 1, 2, 3
        ) AS added;
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE TRIGGER workflowable_roll_up_closed AFTER UPDATE OF workflow_process_activity_log_status_id ON workflow_process_activity_logs
    FOR EACH ROW WHEN (
        OLD.workflow_process_activity_log_status_id = {A.IN_PROGRESS:d} AND NEW.workflow_process_activity_log_status_id IN ({A.SUCCESS:d}, {A.FAILURE:d}) AND NEW.completed_at IS NOT NULL
    ) EXECUTE FUNCTION workflowable_roll_up_closed()
    """,
    """
    CREATE TRIGGER workflowable_roll_up_inserted AFTER INSERT ON workflow_process_activity_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION workflowable_roll_up_inserted()
    """,
)

#: Per activity: attempts by outcome, failure rate, and duration statistics of closed attempts,
#: from the rolled-up hours (`{hours}`: a WHERE on them) and the attempts still In Progress
#: (`{open}`: more of their WHERE): the workflow_activity_outcomes view's columns, and the
#: report's over a window. Percentiles come from the duration buckets (within about 9%).
_OUTCOMES = f"""
        WITH buckets AS (
            SELECT workflow_activity_id, bucket, sum(successes) AS successes, sum(failures) AS failures,
                   sum(seconds) AS seconds, max(max_seconds) AS max_seconds
            FROM workflow_activity_hours{{hours}}
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
            WHERE workflow_process_activity_log_status_id = {A.IN_PROGRESS:d}{{open}}
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

#: View name -> its SELECT, as the schema has them now. Migrations 0004, 0007 and 0008 created them from
#: their own copies; a change here needs a new migration (tests/integration/test_schema.py says so).
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
    # Per activity: attempts by outcome, failure rate, and duration statistics of closed
    # attempts, over all history (pruned attempts included), from the rolled-up hours.
    "workflow_activity_outcomes": _OUTCOMES.format(hours="", open=""),
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
    # Per transition that is ever checked (it has a condition or a deadline): how many checks
    # looked at it (folded re-checks counted), how often it passed (and was taken, being the
    # first that passed), and each of its conditions' yes, no and errors.
    "workflow_transition_outcomes": """
        SELECT w.id AS workflow_id,
               w.name AS workflow_name,
               t.id AS workflow_transition_id,
               t.name AS transition_name,
               t.ordinal,
               coalesce(sum(c.checks), 0) AS checked,
               coalesce(sum(c.checks) FILTER (WHERE CAST(c.entry ->> 'passed' AS boolean)), 0) AS taken
        FROM workflow_transitions t
        JOIN workflows w ON w.id = t.workflow_id
        LEFT JOIN (
            SELECT e.checks, entry
            FROM workflow_process_evaluations e, jsonb_array_elements(CAST(e.details AS jsonb)) AS entry
        ) c ON CAST(c.entry ->> 'transition' AS bigint) = t.id
        WHERE t.after_seconds IS NOT NULL OR EXISTS (SELECT 1 FROM workflow_conditions k WHERE k.workflow_transition_id = t.id)
        GROUP BY w.id, w.name, t.id, t.name, t.ordinal
    """,
    "workflow_condition_outcomes": """
        SELECT w.id AS workflow_id,
               w.name AS workflow_name,
               t.id AS workflow_transition_id,
               t.name AS transition_name,
               k.id AS workflow_condition_id,
               k.ordinal,
               ct.name AS condition_type,
               coalesce(sum(r.checks), 0) AS checked,
               coalesce(sum(r.checks) FILTER (WHERE CAST(r.result ->> 'passed' AS boolean)), 0) AS passed,
               coalesce(sum(r.checks) FILTER (WHERE r.result ? 'error'), 0) AS errors
        FROM workflow_conditions k
        JOIN workflow_condition_types ct ON ct.id = k.workflow_condition_type_id
        JOIN workflow_transitions t ON t.id = k.workflow_transition_id
        JOIN workflows w ON w.id = t.workflow_id
        LEFT JOIN (
            SELECT e.checks, CAST(entry ->> 'transition' AS bigint) AS transition_id, result, n
            FROM workflow_process_evaluations e,
                 jsonb_array_elements(CAST(e.details AS jsonb)) AS entry,
                 jsonb_array_elements(coalesce(entry -> 'conditions', '[]')) WITH ORDINALITY AS checked(result, n)
        ) r ON r.transition_id = t.id AND r.n = k.ordinal
        GROUP BY w.id, w.name, t.id, t.name, k.id, k.ordinal, ct.name
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

#: The report's queries, over a window. Each reads the big tables by index, for the window only
#: (a window of all history has queries of its own: `x IS NULL OR` in one would cost the index).
#: Per activity with attempts in the window: the columns of the workflow_activity_outcomes view,
#: over the attempts closed since the hour of :since and those started since :since and still
#: In Progress.
_WITH_ATTEMPTS = """
        WHERE c.workflow_activity_id IS NOT NULL OR o.workflow_activity_id IS NOT NULL
        ORDER BY w.name, a.name
"""
ACTIVITY_OUTCOMES_SINCE = (
    _OUTCOMES.format(hours="\n            WHERE hour >= date_trunc('hour', CAST(:since AS timestamptz), 'UTC')", open=" AND started_at >= CAST(:since AS timestamptz)")
    + _WITH_ATTEMPTS
)
ACTIVITY_OUTCOMES_ALL = _OUTCOMES.format(hours="", open="") + _WITH_ATTEMPTS

#: Processes per status for a report over a window: the live ones (Created to Paused) as they
#: are now, read by the status index (live processes are few), and the ended ones that ended in
#: the window: Completed by completed_at, Failed and Cancelled by the partial index of their
#: updated_at. Neither reads all history, as the workflow_process_status_counts view does.
STATUS_COUNTS_SINCE = f"""
    SELECT workflow_process_status_id AS status_id, count(*) AS processes
    FROM workflow_processes WHERE workflow_process_status_id IN ({_LIVE})
    GROUP BY 1
    UNION ALL
    SELECT {ProcessStatus.COMPLETED:d}, count(*) FROM workflow_processes WHERE completed_at >= CAST(:since AS timestamptz)
    UNION ALL
    SELECT workflow_process_status_id, count(*)
    FROM workflow_processes
    WHERE workflow_process_status_id IN ({ProcessStatus.FAILED:d}, {ProcessStatus.CANCELLED:d}) AND updated_at >= CAST(:since AS timestamptz)
    GROUP BY 1
"""

#: Every process per status (a report over all history reads the whole table for it).
ALL_STATUS_COUNTS = "SELECT status, processes FROM workflow_process_status_counts ORDER BY workflow_process_status_id"

#: Processes completed (by completed_at) and failed (by when they failed) per hour since :since.
HOURLY_ENDINGS = f"""
    SELECT hour, sum(completed)::bigint AS completed, sum(failed)::bigint AS failed
    FROM (
        SELECT date_trunc('hour', completed_at) AS hour, count(*) AS completed, 0 AS failed
        FROM workflow_processes WHERE completed_at >= CAST(:since AS timestamptz) GROUP BY 1
        UNION ALL
        SELECT date_trunc('hour', updated_at), 0, count(*)
        FROM workflow_processes WHERE workflow_process_status_id = {S.FAILED:d} AND updated_at >= CAST(:since AS timestamptz) GROUP BY 1
    ) AS endings
    GROUP BY hour ORDER BY hour
"""

#: The newest Failed processes (failed since :since), with their errors.
_FAILED = f"""
    SELECT p.id, w.name AS workflow_name, p.error, p.updated_at AS at
    FROM workflow_processes p JOIN workflows w ON w.id = p.workflow_id
    WHERE p.workflow_process_status_id = {S.FAILED:d}{{window}}
    ORDER BY p.updated_at DESC
    LIMIT :limit
"""
FAILED_PROCESSES = _FAILED.format(window=" AND p.updated_at >= CAST(:since AS timestamptz)")
FAILED_PROCESSES_ALL = _FAILED.format(window="")

#: Live processes (Created, Pending, Dispatched, Running; not Paused, which is held on purpose,
#: nor Created to run later) without progress since :before: no attempt started and no event
#: delivered since then. Their own re-checks while Pending rewrite the row (updated_at) but are
#: not progress.
STUCK_PROCESSES = f"""
    SELECT p.id, w.name AS workflow_name, s.name AS status, a.name AS position, progress.at AS last_progress
    FROM workflow_processes p
    JOIN workflows w ON w.id = p.workflow_id
    JOIN workflow_process_statuses s ON s.id = p.workflow_process_status_id
    LEFT JOIN workflow_activities a ON a.id = p.last_workflow_activity_id
    CROSS JOIN LATERAL (
        SELECT greatest(
            p.created_at,
            (SELECT max(l.started_at) FROM workflow_process_activity_logs l WHERE l.workflow_process_id = p.id),
            (SELECT max(d.created_at) FROM workflow_process_deliveries d WHERE d.workflow_process_id = p.id)
        ) AS at
    ) AS progress
    WHERE p.workflow_process_status_id IN ({S.CREATED:d}, {S.PENDING:d}, {S.DISPATCHED:d}, {S.RUNNING:d}) AND progress.at < CAST(:before AS timestamptz)
      AND NOT (p.workflow_process_status_id = {S.CREATED:d} AND p.next_run_at > now())  -- Created to run later, as asked
    ORDER BY progress.at
    LIMIT :limit
"""

#: How often each pair of consecutive steps was taken, over the attempts started since :since
#: (all if NULL): (from activity, to activity, times); from NULL is the start. Each attempt row
#: names the activity its process came from (its position when the row was written), so the
#: pairs come from the window's rows alone. Rows written before migration 0011 name none: for
#: those (and only those: the second half reads no earlier month once the window holds none of
#: them, as Postgres skips a join whose one side is empty) the process's previous step names it.
_STEPS = f"""
    SELECT from_activity_id, to_activity_id, count(*) AS taken
    FROM (
        SELECT l.from_workflow_activity_id AS from_activity_id, l.workflow_activity_id AS to_activity_id
        FROM workflow_activities a
        JOIN workflow_process_activity_logs l ON l.workflow_activity_id = a.id AND l.attempt = 1{{window}}
        WHERE l.from_workflow_activity_id IS NOT NULL OR l.step = 1
        UNION ALL
        SELECT prev.workflow_activity_id, l.workflow_activity_id
        FROM workflow_activities a
        JOIN workflow_process_activity_logs l ON l.workflow_activity_id = a.id AND l.attempt = 1{{window}}
        LEFT JOIN workflow_process_activity_logs prev
          ON prev.workflow_process_id = l.workflow_process_id AND prev.step = l.step - 1
         AND prev.workflow_process_activity_log_status_id = {A.SUCCESS:d}
        WHERE l.from_workflow_activity_id IS NULL AND l.step > 1
    ) AS pairs
    GROUP BY 1, 2
"""
STEPS_TAKEN = _STEPS.format(window=" AND l.started_at >= CAST(:since AS timestamptz)")
STEPS_TAKEN_ALL = _STEPS.format(window="")
