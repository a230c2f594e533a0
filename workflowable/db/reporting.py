"""Reading the mirror: one process with its tokens and attempts, process lists, the seed's queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import ProcessNotFound
from ..states import AttemptStatus, ProcessStatus
from ..workflows.messages import workflow_id_for
from . import reporting_sql
from .drawing import SavedGraph, load_graph
from .models import activities, attempts, deliveries, events, processes, tokens, workflows


@dataclass(frozen=True)
class Token:
    key: str
    value: str
    activity_id: int | None  #: None: an input token from the event, or a delivered one
    activity_name: str | None
    delivery: int | None = None  #: the delivery (its seq) that wrote it; None: input or output


@dataclass(frozen=True)
class DeliveredEvent:
    """An event delivered to a live process (its `seq`th); its fields are tokens of the process."""

    seq: int
    event_name: str
    delivered_at: datetime


@dataclass(frozen=True)
class Attempt:
    id: int
    activity_id: int
    activity_name: str
    status: AttemptStatus
    step: int
    attempt: int
    started_at: datetime
    completed_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class Process:
    """A process as the mirror shows it."""

    id: int
    workflow_id: int
    workflow_name: str
    status: ProcessStatus
    paused_from: ProcessStatus | None  #: while Paused: the status a resume returns to
    position: int | None  #: last_workflow_activity_id
    position_name: str | None
    queue: str
    lock_key: str | None
    dispatched_at: datetime | None
    first_run_at: datetime | None
    last_run_at: datetime | None
    next_run_at: datetime
    completed_at: datetime | None
    error: str | None
    tokens: tuple[Token, ...]
    attempts: tuple[Attempt, ...]
    deliveries: tuple[DeliveredEvent, ...] = ()

    @property
    def temporal_workflow_id(self) -> str:
        return workflow_id_for(self.id)

    @property
    def token_values(self) -> dict[str, str]:
        """Tokens as a dict; a later token of the same key wins, as in the original."""
        return {token.key: token.value for token in self.tokens}


async def load_processes(conn: AsyncConnection, ids: Sequence[int]) -> list[Process]:
    """The processes with these ids, in that order, each with its tokens and attempts."""
    if not ids:
        return []
    position = activities.alias("position")
    heads = (
        await conn.execute(
            sa.select(processes, workflows.c.name.label("workflow_name"), position.c.name.label("position_name"))
            .join(workflows, workflows.c.id == processes.c.workflow_id)
            .outerjoin(position, position.c.id == processes.c.last_workflow_activity_id)
            .where(processes.c.id.in_(ids))
        )
    ).all()
    token_rows = (
        await conn.execute(
            sa.select(tokens, activities.c.name.label("activity_name"))
            .outerjoin(activities, activities.c.id == tokens.c.workflow_activity_id)
            .where(tokens.c.workflow_process_id.in_(ids))
            .order_by(tokens.c.id)
        )
    ).all()
    delivery_rows = (
        await conn.execute(
            sa.select(deliveries, events.c.name.label("event_name"))
            .join(events, events.c.id == deliveries.c.workflow_event_id)
            .where(deliveries.c.workflow_process_id.in_(ids))
            .order_by(deliveries.c.workflow_process_id, deliveries.c.seq)
        )
    ).all()
    seq_of = {d.id: d.seq for d in delivery_rows}
    attempt_rows = (
        await conn.execute(
            sa.select(attempts, activities.c.name.label("activity_name"))
            .join(activities, activities.c.id == attempts.c.workflow_activity_id)
            .where(attempts.c.workflow_process_id.in_(ids))
            .order_by(attempts.c.started_at, attempts.c.id)
        )
    ).all()
    by_id = {
        head.id: Process(
            id=head.id,
            workflow_id=head.workflow_id,
            workflow_name=head.workflow_name,
            status=ProcessStatus(head.workflow_process_status_id),
            paused_from=ProcessStatus(head.paused_from_status_id) if head.paused_from_status_id else None,
            position=head.last_workflow_activity_id,
            position_name=head.position_name,
            queue=head.queue,
            lock_key=head.lock_key,
            dispatched_at=head.dispatched_at,
            first_run_at=head.first_run_at,
            last_run_at=head.last_run_at,
            next_run_at=head.next_run_at,
            completed_at=head.completed_at,
            error=head.error,
            tokens=tuple(
                Token(t.key, t.value, t.workflow_activity_id, t.activity_name, seq_of.get(t.workflow_process_delivery_id))
                for t in token_rows
                if t.workflow_process_id == head.id
            ),
            deliveries=tuple(
                DeliveredEvent(d.seq, d.event_name, d.created_at) for d in delivery_rows if d.workflow_process_id == head.id
            ),
            attempts=tuple(
                Attempt(
                    id=a.id,
                    activity_id=a.workflow_activity_id,
                    activity_name=a.activity_name,
                    status=AttemptStatus(a.workflow_process_activity_log_status_id),
                    step=a.step,
                    attempt=a.attempt,
                    started_at=a.started_at,
                    completed_at=a.completed_at,
                    error=a.error,
                )
                for a in attempt_rows
                if a.workflow_process_id == head.id
            ),
        )
        for head in heads
    }
    return [by_id[i] for i in ids if i in by_id]


async def get_process(engine: AsyncEngine, process_id: int) -> Process:
    async with engine.connect() as conn:
        found = await load_processes(conn, [process_id])
    if not found:
        raise ProcessNotFound(process_id)
    return found[0]


@dataclass(frozen=True)
class ProcessSummary:
    """One line of a process list."""

    id: int
    workflow_name: str
    event_name: str
    status: ProcessStatus
    position_name: str | None
    lock_key: str | None
    next_run_at: datetime
    updated_at: datetime | None


async def list_processes(
    engine: AsyncEngine,
    *,
    status: ProcessStatus | None = None,
    workflow: str | None = None,
    event: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    token: tuple[str, str] | None = None,
    ids: Sequence[int] | None = None,
    limit: int = 50,
) -> list[ProcessSummary]:
    """The newest processes, filtered by status, workflow name, event name, when they were
    created, a token (key, value) they hold, and their ids."""
    position = activities.alias("position")
    query = (
        sa.select(
            processes.c.id,
            workflows.c.name.label("workflow_name"),
            events.c.name.label("event_name"),
            processes.c.workflow_process_status_id,
            position.c.name.label("position_name"),
            processes.c.lock_key,
            processes.c.next_run_at,
            processes.c.updated_at,
        )
        .join(workflows, workflows.c.id == processes.c.workflow_id)
        .join(events, events.c.id == workflows.c.workflow_event_id)
        .outerjoin(position, position.c.id == processes.c.last_workflow_activity_id)
        .order_by(processes.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(processes.c.workflow_process_status_id == int(status))
    if workflow is not None:
        query = query.where(workflows.c.name == workflow)
    if event is not None:
        query = query.where(events.c.name == event)
    if created_after is not None:
        query = query.where(processes.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(processes.c.created_at < created_before)
    if ids is not None:  # one array parameter, however many ids
        query = query.where(processes.c.id == sa.any_(sa.bindparam("ids", list(ids), type_=postgresql.ARRAY(sa.BigInteger))))
    if token is not None:  # the hash index on the value finds the few rows with it
        key, value = token
        holds = sa.select(tokens.c.id).where(tokens.c.workflow_process_id == processes.c.id, tokens.c.value == value, tokens.c.key == key)
        query = query.where(holds.exists())
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        ProcessSummary(
            r.id, r.workflow_name, r.event_name, ProcessStatus(r.workflow_process_status_id), r.position_name, r.lock_key, r.next_run_at, r.updated_at
        )
        for r in rows
    ]


async def list_attempts(
    engine: AsyncEngine,
    *,
    activity: str | None = None,
    status: AttemptStatus | None = None,
    process_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest attempts (from the durations view), filtered by activity name, status and process."""
    clauses: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if activity is not None:
        clauses.append("activity_name = :activity")
        params["activity"] = activity
    if status is not None:
        clauses.append("workflow_process_activity_log_status_id = :status")
        params["status"] = int(status)
    if process_id is not None:
        clauses.append("workflow_process_id = :process_id")
        params["process_id"] = process_id
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = sa.text(f"SELECT * FROM workflow_process_activity_log_durations {where} ORDER BY id DESC LIMIT :limit")
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query, params)).mappings()]


@dataclass(frozen=True)
class Report:
    """What `workflowable report` shows: processes per status now; and over its window (since
    `since`, all history if None): each activity's attempts, outcomes and durations, processes
    completed and failed per hour, the failed processes with their errors; and the stuck ones."""

    #: all eight statuses, in id order: the live ones as they are now; the ended ones (Failed,
    #: Completed, Cancelled) that ended in the window (all of them if `since` is None)
    status_counts: dict[str, int]
    activities: list[dict[str, Any]]  #: per activity with attempts in the window, as the workflow_activity_outcomes view's rows
    generated_at: datetime
    since: datetime | None = None
    hourly: list[dict[str, Any]] = field(default_factory=list)  #: {hour, completed, failed}, oldest first
    failed: list[dict[str, Any]] = field(default_factory=list)  #: {id, workflow_name, error, at}, newest first
    #: live processes without progress (no attempt started, no event delivered) for `stuck_after`
    stuck: list[dict[str, Any]] = field(default_factory=list)  #: {id, workflow_name, status, position, last_progress}
    stuck_after: timedelta = timedelta(hours=1)
    #: each workflow with attempts in the window, drawn: {name, activities: [{id, name, type}],
    #: steps: [{id, source, target, ordinal, label, taken}]} (the activities' figures are in `activities`)
    graphs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def processes(self) -> int:
        return sum(self.status_counts.values())

    @property
    def attempts(self) -> int:
        return sum(int(a["attempts"]) for a in self.activities)


#: Rows of the failed and stuck lists at most.
LISTED = 50


async def build_report(engine: AsyncEngine, *, since: datetime | None = None, stuck_after: timedelta = timedelta(hours=1)) -> Report:
    """The report over `since` .. now (all history if None; the hourly figures then cover the
    last day). Every query reads the big tables by index, for the window only."""
    async with engine.connect() as conn:
        now = await conn.scalar(sa.text("SELECT now()"))
        if since is None:
            counts = {r.status: int(r.processes) for r in await conn.execute(sa.text(reporting_sql.ALL_STATUS_COUNTS))}
        else:
            found = {ProcessStatus(r.status_id): int(r.processes) for r in await conn.execute(sa.text(reporting_sql.STATUS_COUNTS_SINCE), {"since": since})}
            counts = {status.label: found.get(status, 0) for status in ProcessStatus}
        window = {"since": since}
        outcomes = reporting_sql.ACTIVITY_OUTCOMES_ALL if since is None else reporting_sql.ACTIVITY_OUTCOMES_SINCE
        rows = [dict(row) for row in (await conn.execute(sa.text(outcomes), window)).mappings()]
        hours_from = since or now - timedelta(days=1)
        hourly = [dict(row) for row in (await conn.execute(sa.text(reporting_sql.HOURLY_ENDINGS), {"since": hours_from})).mappings()]
        failed_query = reporting_sql.FAILED_PROCESSES_ALL if since is None else reporting_sql.FAILED_PROCESSES
        failed = [dict(row) for row in (await conn.execute(sa.text(failed_query), {**window, "limit": LISTED})).mappings()]
        stuck = [
            dict(row)
            for row in (await conn.execute(sa.text(reporting_sql.STUCK_PROCESSES), {"before": now - stuck_after, "limit": LISTED})).mappings()
        ]
        steps = reporting_sql.STEPS_TAKEN_ALL if since is None else reporting_sql.STEPS_TAKEN
        taken = {(r.from_activity_id, r.to_activity_id): int(r.taken) for r in await conn.execute(sa.text(steps), window)}
        graphs = [_drawn(await load_graph(conn, workflow_id), taken) for workflow_id in dict.fromkeys(r["workflow_id"] for r in rows)]
    return Report(counts, rows, now, since, hourly, failed, stuck, stuck_after, graphs)


def _drawn(graph: SavedGraph, taken: dict[tuple[int | None, int], int]) -> dict[str, Any]:
    """A workflow's graph for the report's picture, each transition with how often it was taken
    (by the pairs of consecutive steps: when two transitions join the same two activities, the
    first in order gets the count)."""
    counted: set[tuple[int | None, int]] = set()
    steps = []
    for step in graph.steps:
        pair = (step.source, step.target)
        steps.append({"id": step.id, "source": step.source, "target": step.target, "ordinal": step.ordinal, "label": step.label,
                      "taken": 0 if pair in counted else taken.get(pair, 0)})
        counted.add(pair)
    activities = [{"id": activity_id, "name": name, "type": kind} for activity_id, (name, kind) in graph.activities.items()]
    return {"name": graph.name, "activities": activities, "steps": steps}
