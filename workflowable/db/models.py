"""The mirror's tables, with the original package's table and column names and seeded ids.

Added beyond the original (documented in docs/schema.md): retry policy columns on workflows and
activities, the task queue, Temporal run id and error on processes, and on attempt rows the step,
attempt number, Temporal run id and error. Timestamps are `timestamptz`; an attempt's
`completed_at` is null while it is In Progress.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ..states import AttemptStatus, ProcessStatus, SwapStatus, WorkflowStatus


def _timestamp(*, nullable: bool = True, default_now: bool = False, index: bool = False) -> sa.Column:
    return sa.Column(
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default_now else None,
        index=index,
    )


def _fk(target: str, *, nullable: bool = False, ondelete: str | None = "CASCADE", index: bool = True) -> sa.Column:
    return sa.Column(sa.BigInteger, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)


class _Timestamps(SQLModel):
    created_at: datetime | None = Field(default=None, sa_column_kwargs={"server_default": sa.func.now()}, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime | None = Field(default=None, sa_column_kwargs={"server_default": sa.func.now()}, sa_type=sa.DateTime(timezone=True))


class WorkflowEventRow(_Timestamps, table=True):
    __tablename__ = "workflow_events"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255, unique=True)
    class_name: str = Field(max_length=255, unique=True)
    description: str | None = Field(default=None, max_length=255)


class WorkflowStatusRow(_Timestamps, table=True):
    __tablename__ = "workflow_statuses"

    id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255, unique=True)


class WorkflowPriorityRow(_Timestamps, table=True):
    __tablename__ = "workflow_priorities"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255)
    priority: int = Field(unique=True)
    description: str | None = None


class WorkflowRow(_Timestamps, table=True):
    __tablename__ = "workflows"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255, unique=True)
    workflow_event_id: int = Field(sa_column=_fk("workflow_events.id"))
    workflow_status_id: int = Field(sa_column=_fk("workflow_statuses.id"))
    workflow_priority_id: int = Field(sa_column=_fk("workflow_priorities.id", ondelete=None))
    retry_interval: int = Field(default=300, sa_column_kwargs={"server_default": "300"})
    description: str | None = None
    #: added: the default retry policy of the workflow's activities
    max_attempts: int = Field(default=3, sa_column_kwargs={"server_default": "3"})
    retry_backoff: float = Field(default=1.0, sa_column_kwargs={"server_default": "1.0"})
    activity_timeout: float = Field(default=300.0, sa_column_kwargs={"server_default": "300"})


class WorkflowActivityTypeRow(_Timestamps, table=True):
    __tablename__ = "workflow_activity_types"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255)
    class_name: str = Field(max_length=255, unique=True)


class WorkflowActivityRow(_Timestamps, table=True):
    __tablename__ = "workflow_activities"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_activity_type_id: int = Field(sa_column=_fk("workflow_activity_types.id"))
    workflow_id: int = Field(sa_column=_fk("workflows.id"))
    name: str = Field(max_length=255)
    description: str | None = Field(default=None, max_length=255)
    #: added: overrides of the workflow's retry policy
    max_attempts: int | None = None
    timeout: float | None = None


class WorkflowActivityParameterRow(_Timestamps, table=True):
    __tablename__ = "workflow_activity_parameters"
    __table_args__ = (sa.UniqueConstraint("workflow_activity_id", "key"),)

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_activity_id: int = Field(sa_column=_fk("workflow_activities.id", nullable=True, index=False))
    key: str = Field(max_length=255)
    value: str = Field(sa_type=sa.Text)  #: JSON


class WorkflowTransitionRow(_Timestamps, table=True):
    __tablename__ = "workflow_transitions"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255)
    workflow_id: int = Field(sa_column=_fk("workflows.id"))
    from_workflow_activity_id: int | None = Field(default=None, sa_column=_fk("workflow_activities.id", nullable=True))
    to_workflow_activity_id: int = Field(sa_column=_fk("workflow_activities.id"))
    ordinal: int = Field(sa_type=sa.SmallInteger)
    #: added: the transition passes once the process has waited this long at its source (a deadline)
    after_seconds: float | None = Field(default=None, sa_type=sa.Float)


class WorkflowConditionTypeRow(_Timestamps, table=True):
    __tablename__ = "workflow_condition_types"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255)
    class_name: str = Field(max_length=255, unique=True)


class WorkflowConditionRow(_Timestamps, table=True):
    __tablename__ = "workflow_conditions"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_transition_id: int = Field(sa_column=_fk("workflow_transitions.id"))
    workflow_condition_type_id: int = Field(sa_column=_fk("workflow_condition_types.id"))
    ordinal: int = Field(sa_type=sa.SmallInteger)


class WorkflowConditionParameterRow(_Timestamps, table=True):
    __tablename__ = "workflow_condition_parameters"
    __table_args__ = (sa.UniqueConstraint("workflow_condition_id", "key"),)

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_condition_id: int = Field(sa_column=_fk("workflow_conditions.id", nullable=True, index=False))
    key: str = Field(max_length=255)
    value: str = Field(sa_type=sa.Text)  #: JSON


class WorkflowProcessStatusRow(_Timestamps, table=True):
    __tablename__ = "workflow_process_statuses"

    id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255, unique=True)


class WorkflowProcessRow(_Timestamps, table=True):
    __tablename__ = "workflow_processes"
    __table_args__ = (
        sa.Index("ix_workflow_processes_status_next_run_at", "workflow_process_status_id", "next_run_at"),
        # The report's processes completed per hour, over its window.
        sa.Index("ix_workflow_processes_completed_at", "completed_at"),
        # The Failed and Cancelled ones by when they ended, for the report's window (Completed
        # ones have completed_at); partial, so that no other write pays for it.
        sa.Index(
            "ix_workflow_processes_ended_at",
            "updated_at",
            postgresql_where=sa.text(f"workflow_process_status_id IN ({ProcessStatus.FAILED:d}, {ProcessStatus.CANCELLED:d})"),
        ),
    )

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_id: int = Field(sa_column=_fk("workflows.id", ondelete=None))
    workflow_process_status_id: int = Field(sa_column=_fk("workflow_process_statuses.id", index=False))
    last_workflow_activity_id: int | None = Field(default=None, sa_column=_fk("workflow_activities.id", nullable=True, index=False))
    first_run_at: datetime | None = Field(default=None, sa_column=_timestamp())
    last_run_at: datetime | None = Field(default=None, sa_column=_timestamp())
    next_run_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=False, default_now=True))
    completed_at: datetime | None = Field(default=None, sa_column=_timestamp())
    #: added: when its current Temporal run was started, the status a resume returns to, the
    #: task queue it runs on, its current Temporal run's id, and why it failed
    dispatched_at: datetime | None = Field(default=None, sa_column=_timestamp())
    paused_from_status_id: int | None = Field(
        default=None, sa_column=_fk("workflow_process_statuses.id", nullable=True, ondelete=None, index=False)
    )
    queue: str = Field(max_length=255)
    lock_key: str | None = Field(default=None, sa_type=sa.Text, index=True)
    temporal_run_id: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_type=sa.Text)
    #: added: how many events have been delivered to it (each delivery's `seq` is one more)
    deliveries: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))


class WorkflowProcessTokenRow(_Timestamps, table=True):
    __tablename__ = "workflow_process_tokens"
    # Values are not capped, so a btree on them would refuse large ones; a hash index serves
    # the documented look-up of processes by token value (`WHERE key = .. AND value = ..`).
    __table_args__ = (
        sa.Index("ix_workflow_process_tokens_value", "value", postgresql_using="hash"),
        # The outputs of one attempt (an earlier Success found by a retried step); input tokens have none.
        sa.Index(
            "ix_workflow_process_tokens_attempt",
            "workflow_process_activity_log_id",
            postgresql_where=sa.text("workflow_process_activity_log_id IS NOT NULL"),
        ),
        # The tokens one delivery wrote (a workflow catching up on deliveries reads them).
        sa.Index(
            "ix_workflow_process_tokens_delivery",
            "workflow_process_delivery_id",
            postgresql_where=sa.text("workflow_process_delivery_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_process_id: int = Field(sa_column=_fk("workflow_processes.id"))
    workflow_activity_id: int | None = Field(default=None, sa_column=_fk("workflow_activities.id", nullable=True, index=False))
    key: str = Field(max_length=255, index=True)
    value: str = Field(sa_type=sa.Text)
    #: added: the attempt whose Success wrote this output token (null for input tokens)
    #: (No foreign key: the attempt log is partitioned by time, and a partition dropped for
    #: retention takes its attempts while a live process keeps its tokens.)
    workflow_process_activity_log_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    #: added: the delivery of an event that wrote this token (null for input and output tokens)
    workflow_process_delivery_id: int | None = Field(
        default=None, sa_column=_fk("workflow_process_deliveries.id", nullable=True, index=False)
    )


class WorkflowEventListenerRow(_Timestamps, table=True):
    """Added: a workflow's live processes receive this event when their tokens match it."""

    __tablename__ = "workflow_event_listeners"
    __table_args__ = (sa.UniqueConstraint("workflow_id", "workflow_event_id", name="workflow_event_listeners_key"),)

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_id: int = Field(sa_column=_fk("workflows.id", index=False))
    workflow_event_id: int = Field(sa_column=_fk("workflow_events.id"))
    #: JSON object: event field -> the process token it must equal
    match: str = Field(sa_type=sa.Text)


class WorkflowProcessDeliveryRow(_Timestamps, table=True):
    """Added: an event delivered to a live process; its fields are tokens of the process."""

    __tablename__ = "workflow_process_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("workflow_process_id", "seq", name="workflow_process_deliveries_seq"),
        sa.UniqueConstraint("workflow_process_id", "signal_id", name="workflow_process_deliveries_signal"),
    )

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_process_id: int = Field(sa_column=_fk("workflow_processes.id", index=False))
    seq: int = Field(sa_type=sa.Integer)  #: the process's 1st, 2nd, ... delivery
    workflow_event_id: int = Field(sa_column=_fk("workflow_events.id"))
    #: a delivery signalled by hand: the workflow's id for it, so that it is recorded once
    signal_id: str | None = Field(default=None, max_length=64)


class WorkflowProcessActivityLogStatusRow(_Timestamps, table=True):
    __tablename__ = "workflow_process_activity_log_statuses"

    id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255, unique=True)


class WorkflowProcessActivityLogRow(_Timestamps, table=True):
    __tablename__ = "workflow_process_activity_logs"
    # Partitioned by month of started_at (db/partitions.py), so every unique key holds it.
    __table_args__ = (
        # One row per attempt; activities retry, so the row is upserted on this key (an
        # attempt's writes all carry the started_at its first write had).
        sa.UniqueConstraint(
            "workflow_process_id", "temporal_run_id", "step", "attempt", "started_at", name="workflow_process_activity_logs_attempt_key"
        ),
        # Lets the per-activity duration queries read the index alone.
        sa.Index("ix_workflow_process_activity_logs_activity_times", "workflow_activity_id", "started_at", "completed_at"),
        {"postgresql_partition_by": "RANGE (started_at)"},
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=True))
    workflow_process_id: int = Field(sa_column=_fk("workflow_processes.id"))
    workflow_activity_id: int = Field(sa_column=_fk("workflow_activities.id"))
    workflow_process_activity_log_status_id: int = Field(
        sa_column=sa.Column(
            sa.BigInteger,
            sa.ForeignKey("workflow_process_activity_log_statuses.id", ondelete="CASCADE", name="workflow_process_activity_log_status"),
            nullable=False,
            index=True,
        )
    )
    started_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), primary_key=True))
    completed_at: datetime | None = Field(default=None, sa_column=_timestamp())
    #: added: which execution of an activity in the process (1, 2, ...), which retry, which run
    step: int
    attempt: int
    temporal_run_id: str = Field(max_length=64)
    error: str | None = Field(default=None, sa_type=sa.Text)
    #: added: the process's position when the attempt was written (the activity it came from;
    #: NULL at the start, and on rows written before migration 0011). No foreign key: checking
    #: one would read the whole log.
    from_workflow_activity_id: int | None = Field(default=None, sa_type=sa.BigInteger)


class WorkflowSwapStatusRow(_Timestamps, table=True):
    __tablename__ = "workflow_swap_statuses"

    id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    name: str = Field(max_length=255, unique=True)


class WorkflowSwapRow(_Timestamps, table=True):
    """A move of one workflow's live processes onto another workflow of the same event."""

    __tablename__ = "workflow_swaps"

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    from_workflow_id: int = Field(sa_column=_fk("workflows.id"))
    to_workflow_id: int = Field(sa_column=_fk("workflows.id"))
    workflow_swap_status_id: int = Field(sa_column=_fk("workflow_swap_statuses.id"))
    should_transfer_output_tokens: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    scheduled_at: datetime | None = Field(default=None, sa_column=_timestamp(index=True))
    dispatched_at: datetime | None = Field(default=None, sa_column=_timestamp(index=True))
    started_at: datetime | None = Field(default=None, sa_column=_timestamp(index=True))
    completed_at: datetime | None = Field(default=None, sa_column=_timestamp(index=True))


class WorkflowSwapActivityMapRow(_Timestamps, table=True):
    __tablename__ = "workflow_swap_activity_maps"
    __table_args__ = (sa.UniqueConstraint("workflow_swap_id", "from_workflow_activity_id", name="from_workflow_activity_must_be_unique"),)

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_swap_id: int = Field(sa_column=_fk("workflow_swaps.id", index=False))
    from_workflow_activity_id: int = Field(sa_column=_fk("workflow_activities.id", index=False))
    #: NULL: the process starts the new workflow from its start
    to_workflow_activity_id: int | None = Field(default=None, sa_column=_fk("workflow_activities.id", nullable=True, index=False))


class WorkflowSwapAuditLogRow(_Timestamps, table=True):
    """One row per moved process. Deviation: from_workflow_activity_id is nullable (a process
    that had not started an activity moves too), and (swap, from process) is unique."""

    __tablename__ = "workflow_swap_audit_logs"
    __table_args__ = (sa.UniqueConstraint("workflow_swap_id", "from_workflow_process_id", name="workflow_swap_audit_logs_process_key"),)

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_swap_id: int = Field(sa_column=_fk("workflow_swaps.id", index=False))
    from_workflow_process_id: int = Field(sa_column=_fk("workflow_processes.id"))
    from_workflow_activity_id: int | None = Field(default=None, sa_column=_fk("workflow_activities.id", nullable=True, index=False))
    to_workflow_process_id: int = Field(sa_column=_fk("workflow_processes.id"))
    to_workflow_activity_id: int | None = Field(default=None, sa_column=_fk("workflow_activities.id", nullable=True, index=False))


class WorkflowProcessEvaluationRow(_Timestamps, table=True):
    """Added: a check of the transitions leaving a process's position: why it ran, each
    transition checked in order with each condition's result (or error) and its deadline, and
    the one taken (null: none). Identical checks in a row that took none are one row: `checks`
    counts them, created_at is the first and updated_at the last."""

    __tablename__ = "workflow_process_evaluations"
    __table_args__ = (sa.Index("ix_workflow_process_evaluations_process", "workflow_process_id", "id"),)

    id: int | None = Field(default=None, sa_type=sa.BigInteger, primary_key=True)
    workflow_process_id: int = Field(sa_column=_fk("workflow_processes.id", index=False))
    workflow_activity_id: int | None = Field(default=None, sa_column=_fk("workflow_activities.id", nullable=True, index=False))
    cause: str = Field(max_length=32)
    workflow_transition_id: int | None = Field(default=None, sa_column=_fk("workflow_transitions.id", nullable=True))
    details: str = Field(sa_type=sa.Text)  #: JSON: a list, one entry per transition checked
    checks: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("1")))


class WorkflowActivityHourRow(SQLModel, table=True):
    """Added: the attempt log rolled up, per activity, hour (of `completed_at`) and duration
    bucket: what the reports and the workflow_activity_outcomes view read instead of every
    attempt. Kept current by triggers on workflow_process_activity_logs as attempts close
    (reporting_sql.ROLLUP); rows outlive the attempts that `db prune` deletes.

    Bucket 0 holds durations under 1 ms; bucket k >= 1 those from 2^((k-1)/4) to 2^(k/4) ms,
    up to bucket 127 (about 40 days and more): a percentile read from the buckets is within
    about 9% of the exact one."""

    __tablename__ = "workflow_activity_hours"
    __table_args__ = (sa.Index("ix_workflow_activity_hours_hour", "hour"),)  # the reports' windows

    workflow_activity_id: int = Field(
        sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("workflow_activities.id", ondelete="CASCADE"), primary_key=True)
    )
    hour: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), primary_key=True))
    bucket: int = Field(sa_column=sa.Column(sa.SmallInteger, primary_key=True))
    successes: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    failures: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    seconds: float = Field(sa_column=sa.Column(sa.Float(53), nullable=False))  #: the durations' sum
    max_seconds: float = Field(sa_column=sa.Column(sa.Float(53), nullable=False))


def table(model: type[SQLModel]) -> sa.Table:
    """The SQLAlchemy table behind a model, for Core statements on hot paths."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]


processes = table(WorkflowProcessRow)
tokens = table(WorkflowProcessTokenRow)
attempts = table(WorkflowProcessActivityLogRow)
workflows = table(WorkflowRow)
priorities = table(WorkflowPriorityRow)
events = table(WorkflowEventRow)
activities = table(WorkflowActivityRow)
activity_types = table(WorkflowActivityTypeRow)
activity_parameters = table(WorkflowActivityParameterRow)
transitions = table(WorkflowTransitionRow)
conditions = table(WorkflowConditionRow)
condition_types = table(WorkflowConditionTypeRow)
condition_parameters = table(WorkflowConditionParameterRow)
listeners = table(WorkflowEventListenerRow)
deliveries = table(WorkflowProcessDeliveryRow)
evaluations = table(WorkflowProcessEvaluationRow)
swaps = table(WorkflowSwapRow)
swap_maps = table(WorkflowSwapActivityMapRow)
swap_audits = table(WorkflowSwapAuditLogRow)
activity_hours = table(WorkflowActivityHourRow)

#: Rows every database starts with, id by id, from the state enums.
SEEDS: dict[str, list[dict[str, object]]] = {
    "workflow_statuses": [{"id": s.value, "name": s.label} for s in WorkflowStatus],
    "workflow_process_statuses": [{"id": s.value, "name": s.label} for s in ProcessStatus],
    "workflow_process_activity_log_statuses": [{"id": s.value, "name": s.label} for s in AttemptStatus],
    "workflow_swap_statuses": [{"id": s.value, "name": s.label} for s in SwapStatus],
}
