"""Events that reach waiting processes, and deadlines on transitions.

workflow_event_listeners: which events a workflow's live processes receive, and how an event is
matched to a process (event field -> process token). workflow_process_deliveries: each event
delivered to a process, numbered per process (`seq`); workflow_processes.deliveries counts them,
and the tokens a delivery wrote name it; a delivery signalled by hand keeps the workflow's id for
it (`signal_id`), so that it is recorded once. workflow_transitions.after_seconds: a transition that
passes once the process has waited that long at its source. workflow_process_evaluations: each
check of a process's transitions, why it ran and what each condition said (identical checks in a
row that took none folded into one row with a count); an index on workflow_processes.completed_at
for the report's window.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
    ]


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.BigInteger, sa.ForeignKey(target, ondelete="CASCADE"), nullable=nullable)


#: The views this migration created, as it created them (reporting_sql.VIEWS holds them as they are now).
VIEWS: dict[str, str] = {
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


def upgrade() -> None:
    op.add_column("workflow_transitions", sa.Column("after_seconds", sa.Float, nullable=True))
    op.add_column("workflow_processes", sa.Column("deliveries", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.create_index("ix_workflow_processes_completed_at", "workflow_processes", ["completed_at"])
    op.create_table(
        "workflow_event_listeners",
        *_timestamps(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        _fk("workflow_id", "workflows.id"),
        _fk("workflow_event_id", "workflow_events.id"),
        sa.Column("match", sa.Text, nullable=False),
        sa.UniqueConstraint("workflow_id", "workflow_event_id", name="workflow_event_listeners_key"),
    )
    op.create_index("ix_workflow_event_listeners_workflow_event_id", "workflow_event_listeners", ["workflow_event_id"])
    op.create_table(
        "workflow_process_deliveries",
        *_timestamps(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        _fk("workflow_process_id", "workflow_processes.id"),
        sa.Column("seq", sa.Integer, nullable=False),
        _fk("workflow_event_id", "workflow_events.id"),
        sa.Column("signal_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("workflow_process_id", "seq", name="workflow_process_deliveries_seq"),
        sa.UniqueConstraint("workflow_process_id", "signal_id", name="workflow_process_deliveries_signal"),
    )
    op.create_index("ix_workflow_process_deliveries_workflow_event_id", "workflow_process_deliveries", ["workflow_event_id"])
    op.create_table(
        "workflow_process_evaluations",
        *_timestamps(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        _fk("workflow_process_id", "workflow_processes.id"),
        _fk("workflow_activity_id", "workflow_activities.id", nullable=True),
        sa.Column("cause", sa.String(32), nullable=False),
        _fk("workflow_transition_id", "workflow_transitions.id", nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("checks", sa.Integer, nullable=False, server_default=sa.text("1")),
    )
    op.create_index("ix_workflow_process_evaluations_process", "workflow_process_evaluations", ["workflow_process_id", "id"])
    op.create_index("ix_workflow_process_evaluations_workflow_transition_id", "workflow_process_evaluations", ["workflow_transition_id"])
    op.add_column("workflow_process_tokens", _fk("workflow_process_delivery_id", "workflow_process_deliveries.id", nullable=True))
    op.create_index(
        "ix_workflow_process_tokens_delivery",
        "workflow_process_tokens",
        ["workflow_process_delivery_id"],
        postgresql_where=sa.text("workflow_process_delivery_id IS NOT NULL"),
    )
    for name, body in VIEWS.items():
        op.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index("ix_workflow_process_tokens_delivery", table_name="workflow_process_tokens")
    op.drop_column("workflow_process_tokens", "workflow_process_delivery_id")
    op.drop_table("workflow_process_evaluations")
    op.drop_table("workflow_process_deliveries")
    op.drop_table("workflow_event_listeners")
    op.drop_index("ix_workflow_processes_completed_at", table_name="workflow_processes")
    op.drop_column("workflow_processes", "deliveries")
    op.drop_column("workflow_transitions", "after_seconds")
