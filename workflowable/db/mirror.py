"""The Postgres mirror of running processes: creation, status moves, attempt rows, tokens.

Every write is one transaction and safe to repeat, because the activities that call these
retry: status updates apply only along the transition table (so they never leave a terminal
state), attempt rows are upserts on (process, run, step, attempt), and output tokens commit
with the attempt's Success row and the process's new position. SQL Core, not ORM objects: this
is the hot path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import ProcessNotFound, UnknownType
from ..settings import DEFAULT_CHECKS_PER_RUN
from ..states import DISPATCHABLE, SWEPT, AttemptStatus, ProcessStatus, Request, SwapStatus, WorkflowStatus, sources_of
from ..workflows.messages import (
    DEFAULT_LOCK_LEASE_SECONDS,
    ActivityStep,
    Cause,
    ConditionStep,
    Delivery,
    Listening,
    ProcessPlan,
    StatusChange,
    StatusWrite,
    TransitionStep,
)
from .database import Database
from .models import (
    activities,
    activity_parameters,
    activity_types,
    condition_parameters,
    condition_types,
    conditions,
    deliveries,
    events,
    listeners,
    priorities,
    processes,
    tokens,
    transitions,
    workflows,
)
from .versions import LIVE, holding_swaps

#: How long a process holds its lock key without renewing it (it renews every third of that).
DEFAULT_LOCK_LEASE = timedelta(seconds=DEFAULT_LOCK_LEASE_SECONDS)


@dataclass(frozen=True)
class DispatchTarget:
    """What starting a process's Temporal workflow needs, read from the mirror."""

    process_id: int
    status: ProcessStatus
    queue: str
    workflow_name: str
    event_name: str
    priority: int


@dataclass(frozen=True)
class ProcessHead:
    """Where a process stands, for a request to be checked against: one row, no tokens or attempts."""

    id: int
    status: ProcessStatus
    paused_from: ProcessStatus | None
    first_run_at: datetime | None
    queue: str


@dataclass(frozen=True)
class AttemptKey:
    """What identifies one attempt row; a retried write of the same attempt hits the same row."""

    process_id: int
    activity_id: int
    run_id: str
    step: int
    attempt: int


def decode_parameters(rows: Iterable[Any]) -> dict[str, Any]:
    return {row.key: json.loads(row.value) for row in rows}


class Mirror:
    """Reads and writes of the process tables, each in its own transaction."""

    def __init__(
        self, database: Database, *, lock_lease: timedelta = DEFAULT_LOCK_LEASE, checks_per_run: int = DEFAULT_CHECKS_PER_RUN
    ) -> None:
        self.engine = engine = database.engine
        # Writes that are one statement each run in autocommit: no BEGIN and COMMIT round trips
        # around them (half the round trips of an attempt's writes). Postgres makes each
        # statement atomic on its own. The hottest (a dispatch, an attempt's writes) skip
        # SQLAlchemy's per-statement work too.
        self.single = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.statements = database.statements
        self.lock_lease = lock_lease
        self.checks_per_run = checks_per_run
        self._graphs: dict[int, _Graph] = {}  #: workflow id -> its graph, once it can no longer change

    async def set_status(self, change: StatusChange) -> bool:
        """Apply a status move if the transition table allows it from the current status; True
        if the mirror shows that status now (a repeated write included)."""
        async with self.single.connect() as conn:
            if await _move(conn, change):
                return True
            current = await conn.scalar(sa.select(processes.c.workflow_process_status_id).where(processes.c.id == change.process_id))
            return current == change.status

    async def write_status(self, write: StatusWrite) -> ProcessStatus:
        """The process workflow's status move, if the transition table allows it from the current
        status (Pending may be written again, with its next check's time), recording the run
        that wrote it (a run that continued as new has a new id); the status the mirror shows now."""
        change = StatusChange(write.process_id, write.status, write.next_run_at, write.error, write.paused_from)
        async with self.single.connect() as conn:
            if await _move(conn, change, run_id=write.run_id, again=change.status == ProcessStatus.PENDING):
                return ProcessStatus(write.status)
            current = await conn.scalar(sa.select(processes.c.workflow_process_status_id).where(processes.c.id == write.process_id))
        if current is None:
            raise ProcessNotFound(write.process_id)
        return ProcessStatus(current)

    async def begin_process(self, process_id: int, run_id: str) -> ProcessPlan:
        """A workflow run starts: to Dispatched if the dispatcher has not written that yet (from
        Created, or from Failed for a retry's new run), then Running, unless it has a lock key
        (it stays Dispatched until it holds its key); a process paused or ended meanwhile is left
        as it is, in one statement (`BEGIN_PROCESS`) that also returns the status, the position,
        the steps so far and the tokens; with the graph (cached: a workflow that can run can no
        longer change), everything the workflow needs."""
        rows = await self.statements.rows(BEGIN_PROCESS, {"process_id": process_id, "run_id": run_id})
        if not rows:
            raise ProcessNotFound(process_id)
        row = rows[0]
        return self._plan(await self._graph(row.workflow_id), row, ProcessStatus(row.workflow_process_status_id))

    async def new_plan(self, process_id: int, workflow_id: int, input_tokens: Mapping[str, str]) -> ProcessPlan:
        """The plan of a process just created (no lock key), for its dispatcher to give its workflow."""
        graph = await self._graph(workflow_id)
        row = _NewRow(process_id, workflow_id, None, None, 0, list(input_tokens), list(input_tokens.values()))
        return self._plan(graph, row, ProcessStatus.DISPATCHED)

    async def _graph(self, workflow_id: int) -> _Graph:
        graph = self._graphs.get(workflow_id)
        if graph is None:
            async with self.engine.connect() as conn:
                graph = await self._load_graph(conn, workflow_id)
        return graph

    async def head(self, process_id: int) -> ProcessHead:
        """The process's status and what a request needs beside it, in one read of one row."""
        columns = (processes.c.workflow_process_status_id, processes.c.paused_from_status_id, processes.c.first_run_at, processes.c.queue)
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(*columns).where(processes.c.id == process_id))).one_or_none()
        if row is None:
            raise ProcessNotFound(process_id)
        paused_from = None if row.paused_from_status_id is None else ProcessStatus(row.paused_from_status_id)
        return ProcessHead(process_id, ProcessStatus(row.workflow_process_status_id), paused_from, row.first_run_at, row.queue)

    async def apply_before_run(self, process: ProcessHead, request: Request, *, resume_to: ProcessStatus | None = None) -> bool:
        """Apply a request to a process whose workflow has not begun (or has ended outside
        Workflowable): pause records the status to return to, resume returns there (or to
        `resume_to`), cancel ends it. False if the process moved meanwhile."""
        if request is Request.PAUSE:
            change = StatusChange(process.id, ProcessStatus.PAUSED, paused_from=process.status)
        elif request is Request.RESUME:
            change = StatusChange(process.id, resume_to or process.paused_from or ProcessStatus.CREATED)
        elif request is Request.CANCEL:
            change = StatusChange(process.id, ProcessStatus.CANCELLED)
        else:
            raise ValueError(f"{request} is not applied through the mirror")
        async with self.single.connect() as conn:
            return await _move(conn, change, sources=frozenset({process.status}))

    async def trigger(
        self, class_path: str, queue: str, lock_key: str | None, input_tokens: Mapping[str, str], *, next_run_at: datetime | None
    ) -> tuple[list[Any], list[Any]]:
        """Write a Created process per Active workflow bound to the event class and their input
        tokens, and deliver the event to the live processes of workflows that listen for it, in
        one statement. Returns (created, delivered): for each process created its id,
        next_run_at, workflow_id, workflow_name, priority and `held` (a running swap holds back
        its dispatch); for each delivery the process id, its `seq` and the process's status."""
        params = {
            "class_path": class_path,
            "queue": queue,
            "lock_key": lock_key,
            "next_run_at": next_run_at,  # None: now
            "keys": list(input_tokens),
            "values": list(input_tokens.values()),
        }
        rows = await self.statements.rows(TRIGGER, params)
        return [r for r in rows if r.kind == "created"], [r for r in rows if r.kind == "delivered"]

    async def record_delivery(self, process_id: int, event_name: str, fields: Mapping[str, str], signal_id: str) -> Delivery | None:
        """Record a delivery signalled by hand to the process, as a trigger's would be (numbered,
        its fields as tokens); once per `signal_id`, so that a retried write records nothing
        more. None if the process has ended (nothing is written)."""
        async with self.engine.begin() as conn:
            event_id = await conn.scalar(sa.select(events.c.id).where(events.c.name == event_name))
            if event_id is None:
                raise UnknownType(f"no event type is named {event_name!r}")
            earlier = await conn.scalar(
                sa.select(deliveries.c.seq).where(deliveries.c.workflow_process_id == process_id, deliveries.c.signal_id == signal_id)
            )
            if earlier is not None:
                return Delivery(event_name, dict(fields), earlier)
            seq = await conn.scalar(
                processes.update()
                .where(processes.c.id == process_id, processes.c.workflow_process_status_id.in_(LIVE))
                .values(deliveries=processes.c.deliveries + 1)
                .returning(processes.c.deliveries)
            )
            if seq is None:
                return None
            delivery_id = await conn.scalar(
                deliveries.insert()
                .values(workflow_process_id=process_id, seq=seq, workflow_event_id=event_id, signal_id=signal_id)
                .returning(deliveries.c.id)
            )
            if fields:
                rows = [{"workflow_process_id": process_id, "key": k, "value": v, "workflow_process_delivery_id": delivery_id} for k, v in fields.items()]
                await conn.execute(tokens.insert(), rows)
        return Delivery(event_name, dict(fields), seq)

    async def record_evaluation(self, process_id: int, position: int | None, cause: str, chosen: int | None, details: str) -> None:
        """Keep a check of the transitions at `position`; one that took none and is the same as
        the process's last (same position, cause and findings) is folded into it."""
        params = {"process_id": process_id, "activity_id": position, "cause": cause[:32], "chosen": chosen, "details": details}
        await self.statements.rows(RECORD_EVALUATION, params)

    async def deliveries_after(self, process_id: int, after: int) -> list[Delivery]:
        """The deliveries to the process after its `after`th, with their tokens (few: usually none)."""
        rows = await self.statements.rows(DELIVERIES_AFTER, {"process_id": process_id, "after": after})
        return [Delivery(r.event, dict(zip(r.token_keys or (), r.token_values or (), strict=True)), r.seq) for r in rows]

    async def fail_dispatch(self, process_id: int, seen: ProcessStatus, reason: str) -> bool:
        """`fail_dispatch`, if the process is still in `seen`."""
        async with self.single.connect() as conn:
            return await fail_dispatch(conn, process_id, reason, seen=seen)

    async def mark_dispatched(self, process_id: int, run_id: str) -> datetime | None:
        """When the process was marked Dispatched; None if its run had marked itself already."""
        rows = await self.statements.rows(MARK_DISPATCHED, _dispatched_params({process_id: run_id}))
        return rows[0].dispatched_at if rows else None

    async def start_attempt(self, key: AttemptKey, started_at: datetime) -> dict[str, str] | None:
        """Open (or reopen, on a retried write) the attempt's row as In Progress, unless the step
        already has a Success row: a worker that died after committing it and before Temporal
        heard of it. Then nothing is written and that Success's output tokens are returned, so
        the step is not run twice."""
        params = _attempt_params(key, AttemptStatus.IN_PROGRESS, started_at=started_at)
        return await self._earlier_outputs(await self.statements.scalar(START_ATTEMPT, params))

    async def begin_and_start_attempt(self, key: AttemptKey, started_at: datetime) -> tuple[ProcessStatus, dict[str, str] | None]:
        """`begin_process`'s write and `start_attempt`, in one statement, for the first attempt
        of a run whose plan came with its input: the status after the begin (the attempt's row
        is opened only if that is Running), and as `start_attempt` says."""
        params = _attempt_params(key, AttemptStatus.IN_PROGRESS, started_at=started_at)
        rows = await self.statements.rows(BEGIN_AND_START_ATTEMPT, params)
        if not rows:
            raise ProcessNotFound(key.process_id)
        return ProcessStatus(rows[0].status_now), await self._earlier_outputs(rows[0].done_id)

    async def _earlier_outputs(self, done_id: int | None) -> dict[str, str] | None:
        if done_id is None:
            return None
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(tokens.c.key, tokens.c.value)
                .where(tokens.c.workflow_process_activity_log_id == done_id)
                .order_by(tokens.c.id)
            )
            return {row.key: row.value for row in rows}

    async def succeed_attempt(
        self,
        key: AttemptKey,
        started_at: datetime,
        completed_at: datetime,
        outputs: Mapping[str, str],
        *,
        completes: bool = False,
        checked: tuple[int | None, str] | None = None,
    ) -> bool:
        """Close the attempt as Success, write its output tokens and move the position, in one
        statement; with `completes` (no transition leaves the activity), a Running process is
        Completed by the same statement; with `checked` (the transitions leaving the activity were
        checked: the one chosen and the details, as `record_evaluation` takes them), its record too. Repeating it changes nothing: an attempt closes once, and all
        of this goes with that close. True if it completed the process."""
        params = _attempt_params(key, AttemptStatus.SUCCESS, started_at=started_at, completed_at=completed_at)
        params.update(keys=list(outputs), values=list(outputs.values()), completes=completes)
        chosen, details = checked or (None, None)
        params.update(chosen=chosen, details=details, cause=Cause.SUCCEEDED)
        return bool(await self.statements.scalar(SUCCEED_ATTEMPT, params))

    async def fail_attempt(self, key: AttemptKey, started_at: datetime, completed_at: datetime, error: str) -> None:
        params = _attempt_params(key, AttemptStatus.FAILURE, started_at=started_at, completed_at=completed_at, error=error)
        await self.statements.rows(FAIL_ATTEMPT, params)

    async def abandon_attempt(self, key: AttemptKey, now: datetime, error: str) -> None:
        """Close as Failure an attempt whose worker could not, if it is still open (whenever it
        started); if it was never written, write it started and ended `now`."""
        params = _attempt_params(key, AttemptStatus.FAILURE, started_at=now, completed_at=now, error=error)
        await self.statements.rows(ABANDON_ATTEMPT, params)


    async def dispatch_target(self, process_id: int) -> DispatchTarget:
        """What starting one process's workflow needs."""
        async with self.engine.connect() as conn:
            found = await select_dispatch_targets(conn, ids=[process_id])
        if not found:
            raise ProcessNotFound(process_id)
        return found[0]

    def _plan(self, graph: _Graph, row: Any, status: ProcessStatus) -> ProcessPlan:
        return ProcessPlan(
            process_id=row.id,
            workflow_name=graph.workflow_name,
            event_name=graph.event_name,
            status=status,
            retry_interval_seconds=graph.retry_interval_seconds,
            retry_backoff_seconds=graph.retry_backoff_seconds,
            activities=graph.activities,
            transitions=graph.transitions,
            position=row.last_workflow_activity_id,
            tokens=dict(zip(row.token_keys or (), row.token_values or (), strict=True)),
            steps_taken=int(row.steps_taken),
            lock_key=row.lock_key,
            lock_lease_seconds=self.lock_lease.total_seconds(),
            checks_per_run=self.checks_per_run,
            deliveries=row.deliveries,
            arrived_at=row.arrived_at,
            listens=graph.listens,
        )

    async def _load_graph(self, conn: AsyncConnection, workflow_id: int) -> _Graph:
        head = (
            await conn.execute(
                sa.select(
                    workflows.c.id.label("workflow_id"),
                    workflows.c.name.label("workflow_name"),
                    workflows.c.workflow_status_id,
                    workflows.c.retry_interval,
                    workflows.c.max_attempts,
                    workflows.c.retry_backoff,
                    workflows.c.activity_timeout,
                    events.c.name.label("event_name"),
                )
                .join(events, events.c.id == workflows.c.workflow_event_id)
                .where(workflows.c.id == workflow_id)
            )
        ).one()
        graph = _Graph(
            workflow_name=head.workflow_name,
            event_name=head.event_name,
            retry_interval_seconds=float(head.retry_interval),
            retry_backoff_seconds=float(head.retry_backoff),
            activities=await _load_activities(conn, head),
            transitions=await _load_transitions(conn, workflow_id),
            listens=await _load_listens(conn, workflow_id),
        )
        if head.workflow_status_id != WorkflowStatus.DRAFT:  # saving a workflow is allowed only while Draft
            self._graphs[workflow_id] = graph
        return graph


@dataclass(frozen=True)
class _NewRow:
    """What `_plan` reads of a process row, for a process just created."""

    id: int
    workflow_id: int
    lock_key: str | None
    last_workflow_activity_id: int | None
    steps_taken: int
    token_keys: list[str]
    token_values: list[str]
    deliveries: int = 0
    arrived_at: datetime | None = None  #: as its run begins


@dataclass(frozen=True)
class _Graph:
    """A workflow as its processes see it; fixed once the workflow has left Draft."""

    workflow_name: str
    event_name: str
    retry_interval_seconds: float
    retry_backoff_seconds: float
    activities: list[ActivityStep]
    transitions: list[TransitionStep]
    listens: list[Listening]


# A workflow run begins: the process row locked; to Dispatched if the dispatcher has not
# written that yet (from Created, or from Failed for a retry's new run: the dispatch write's
# columns), then to Running unless it has a lock key (it stays Dispatched until it holds its
# key); any other status (paused or ended meanwhile, or Running on a repeated write) is left as
# it is. `target.status_now` is the status after it.
_BEGIN = f"""
    WITH found AS (
        SELECT id, workflow_process_status_id AS status, lock_key,
               workflow_process_status_id = {ProcessStatus.CREATED:d}
               OR (workflow_process_status_id = {ProcessStatus.FAILED:d} AND temporal_run_id IS DISTINCT FROM :run_id) AS dispatching
        FROM workflow_processes WHERE id = :process_id
        FOR UPDATE
    ), target AS (
        SELECT id, status, dispatching,
               CASE WHEN (dispatching OR status IN ({ProcessStatus.DISPATCHED:d}, {ProcessStatus.PENDING:d})) AND lock_key IS NULL THEN {ProcessStatus.RUNNING:d}
                    WHEN dispatching THEN {ProcessStatus.DISPATCHED:d}
                    ELSE status END AS status_now
        FROM found
    ), moved AS (
        UPDATE workflow_processes AS p
        SET workflow_process_status_id = target.status_now, temporal_run_id = :run_id, paused_from_status_id = NULL,
            dispatched_at = CASE WHEN target.dispatching THEN now() ELSE p.dispatched_at END,
            error = CASE WHEN target.dispatching THEN NULL ELSE p.error END,
            first_run_at = CASE WHEN target.status_now = {ProcessStatus.RUNNING:d} THEN coalesce(p.first_run_at, now()) ELSE p.first_run_at END,
            last_run_at = CASE WHEN target.status_now = {ProcessStatus.RUNNING:d} THEN now() ELSE p.last_run_at END,
            updated_at = now()
        FROM target
        WHERE p.id = target.id AND target.status_now <> target.status
    )
"""
#: The begin, and the row as it now is, its steps so far and its tokens in the order written.
BEGIN_PROCESS = sa.text(
    _BEGIN
    + f"""
    SELECT p.id, p.workflow_id, target.status_now AS workflow_process_status_id, p.lock_key, p.last_workflow_activity_id, p.deliveries,
           (SELECT coalesce(max(a.step), 0) FROM workflow_process_activity_logs AS a WHERE a.workflow_process_id = p.id) AS steps_taken,
           coalesce(
               (SELECT max(a.completed_at) FROM workflow_process_activity_logs AS a
                WHERE a.workflow_process_id = p.id AND a.workflow_process_activity_log_status_id = {AttemptStatus.SUCCESS:d}),
               p.first_run_at, now()
           ) AS arrived_at,
           (SELECT array_agg(t.key ORDER BY t.id) FROM workflow_process_tokens AS t WHERE t.workflow_process_id = p.id) AS token_keys,
           (SELECT array_agg(t.value ORDER BY t.id) FROM workflow_process_tokens AS t WHERE t.workflow_process_id = p.id) AS token_values
    FROM workflow_processes AS p JOIN target ON target.id = p.id
    """
)


#: Statuses of a process that receives deliveries: the live ones.
_RECEIVING = ", ".join(str(s) for s in LIVE)

# A trigger, in one statement: a Created process for each Active workflow bound to the event
# (in workflow order), its input tokens, and for each whether a running swap holds back its
# dispatch (the test of versions.holding_swaps, in SQL). One snapshot: a swap that begins
# meanwhile sees these processes, or holds them.
#
# And the event's deliveries: each live process of a workflow listening for the event whose
# latest token of each matched key equals the event's field. Candidates come from the token
# index (the first match pair's value), so the cost follows the processes that match, not those
# that wait. Each delivery is numbered per process under the process row's lock (`deliveries`
# + 1), so a workflow that has seen delivery n knows whether it missed one; its fields become
# tokens of the process, naming the delivery. Rows: kind 'created' (as above) or 'delivered'
# (id, seq, the status it was delivered in).
TRIGGER = sa.text(
    f"""
    WITH bound AS (
        SELECT w.id, w.name, pr.priority,
               EXISTS (
                   SELECT 1 FROM workflow_swaps AS s
                   WHERE s.workflow_swap_status_id IN ({", ".join(str(int(s)) for s in SwapStatus if s.holds_dispatch)})
                     AND (s.from_workflow_id = w.id OR s.to_workflow_id = w.id)
               ) AS held
        FROM workflows AS w
        JOIN workflow_events AS e ON e.id = w.workflow_event_id
        JOIN workflow_priorities AS pr ON pr.id = w.workflow_priority_id
        WHERE e.class_name = :class_path AND w.workflow_status_id = {WorkflowStatus.ACTIVE:d}
    ), created AS (
        INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue, lock_key, next_run_at)
        SELECT bound.id, {ProcessStatus.CREATED:d}, :queue, CAST(:lock_key AS text), coalesce(CAST(:next_run_at AS timestamptz), now())
        FROM bound
        ORDER BY bound.id
        RETURNING id, workflow_id, next_run_at
    ), inputs AS (
        INSERT INTO workflow_process_tokens (workflow_process_id, key, value)
        SELECT created.id, input.key, input.value
        FROM created, unnest(CAST(:keys AS text[]), CAST(:values AS text[])) WITH ORDINALITY AS input(key, value, n)
        ORDER BY created.id, input.n
    ), fields AS (
        SELECT coalesce(jsonb_object_agg(field.key, field.value), '{{}}') AS f
        FROM unnest(CAST(:keys AS text[]), CAST(:values AS text[])) AS field(key, value)
    ), listening AS (
        SELECT l.workflow_id, l.workflow_event_id, CAST(l.match AS jsonb) AS match,
               (SELECT m.key FROM jsonb_each_text(CAST(l.match AS jsonb)) AS m ORDER BY m.key LIMIT 1) AS first_field
        FROM workflow_event_listeners AS l
        JOIN workflow_events AS e ON e.id = l.workflow_event_id
        WHERE e.class_name = :class_path
    ), matched AS (
        SELECT DISTINCT p.id, listening.workflow_event_id
        FROM listening
        CROSS JOIN fields
        JOIN workflow_process_tokens AS candidate
          ON candidate.value = fields.f ->> listening.first_field AND candidate.key = listening.match ->> listening.first_field
        JOIN workflow_processes AS p
          ON p.id = candidate.workflow_process_id AND p.workflow_id = listening.workflow_id AND p.workflow_process_status_id IN ({_RECEIVING})
        WHERE NOT EXISTS (
            SELECT 1 FROM jsonb_each_text(listening.match) AS m(field, token_key)
            WHERE (fields.f ->> m.field) IS DISTINCT FROM (
                SELECT t.value FROM workflow_process_tokens AS t
                WHERE t.workflow_process_id = p.id AND t.key = m.token_key ORDER BY t.id DESC LIMIT 1
            )
        )
    ), locked AS (
        -- in id order, so that two triggers that match the same processes cannot deadlock
        SELECT id FROM workflow_processes WHERE id IN (SELECT id FROM matched) ORDER BY id FOR UPDATE
    ), numbered AS (
        UPDATE workflow_processes AS p
        SET deliveries = p.deliveries + 1
        FROM matched JOIN locked ON locked.id = matched.id
        WHERE p.id = matched.id AND p.workflow_process_status_id IN ({_RECEIVING})
        RETURNING p.id, p.deliveries AS seq, p.workflow_process_status_id AS status, matched.workflow_event_id
    ), delivered AS (
        INSERT INTO workflow_process_deliveries (workflow_process_id, seq, workflow_event_id)
        SELECT id, seq, workflow_event_id FROM numbered ORDER BY id
        RETURNING id, workflow_process_id, seq
    ), delivered_tokens AS (
        INSERT INTO workflow_process_tokens (workflow_process_id, key, value, workflow_process_delivery_id)
        SELECT delivered.workflow_process_id, field.key, field.value, delivered.id
        FROM delivered, unnest(CAST(:keys AS text[]), CAST(:values AS text[])) WITH ORDINALITY AS field(key, value, n)
        ORDER BY delivered.id, field.n
    )
    SELECT 'created' AS kind, created.id, created.next_run_at, bound.id AS workflow_id, bound.name AS workflow_name, bound.priority,
           bound.held, NULL AS seq, NULL AS status
    FROM created JOIN bound ON bound.id = created.workflow_id
    UNION ALL
    SELECT 'delivered', numbered.id, NULL, NULL, NULL, NULL, NULL, numbered.seq, numbered.status
    FROM numbered
    ORDER BY kind, workflow_id, id
    """
)

#: The deliveries to a process after its `after`th, with the tokens each wrote, in order.
DELIVERIES_AFTER = sa.text(
    """
    SELECT d.seq, e.name AS event,
           array_agg(t.key ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL) AS token_keys,
           array_agg(t.value ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL) AS token_values
    FROM workflow_process_deliveries AS d
    JOIN workflow_events AS e ON e.id = d.workflow_event_id
    LEFT JOIN workflow_process_tokens AS t ON t.workflow_process_delivery_id = d.id
    WHERE d.workflow_process_id = :process_id AND d.seq > :after
    GROUP BY d.id, d.seq, e.name
    ORDER BY d.seq
    """
)


def _dispatch_query() -> sa.Select[Any]:
    return (
        sa.select(
            processes.c.id,
            processes.c.workflow_process_status_id,
            processes.c.queue,
            workflows.c.name.label("workflow_name"),
            events.c.name.label("event_name"),
            priorities.c.priority,
        )
        .join(workflows, workflows.c.id == processes.c.workflow_id)
        .join(events, events.c.id == workflows.c.workflow_event_id)
        .join(priorities, priorities.c.id == workflows.c.workflow_priority_id)
    )


def _target(row: Any) -> DispatchTarget:
    return DispatchTarget(row.id, ProcessStatus(row.workflow_process_status_id), row.queue, row.workflow_name, row.event_name, row.priority)


async def select_dispatch_targets(conn: AsyncConnection, *, ids: list[int]) -> list[DispatchTarget]:
    return [_target(row) for row in await conn.execute(_dispatch_query().where(processes.c.id.in_(ids)))]


def _due() -> list[Any]:
    return [
        processes.c.workflow_process_status_id.in_([int(s) for s in SWEPT]),
        processes.c.next_run_at <= sa.func.now(),
        ~holding_swaps(processes.c.workflow_id),  # a running swap dispatches them when it completes
    ]


def due_count() -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(processes).where(*_due())


def due_batch(limit: int, skip: list[int]) -> sa.Select[Any]:
    """The next `limit` due processes, highest workflow priority first, then oldest, locked.
    SKIP LOCKED lets sweeps run side by side: each takes rows the others do not hold."""
    return (
        _dispatch_query()
        .where(*_due(), processes.c.id.not_in(skip) if skip else sa.true())
        .order_by(sa.desc(priorities.c.priority), processes.c.id)
        .limit(limit)
        .with_for_update(of=processes, skip_locked=True)
    )


async def count_due(conn: AsyncConnection) -> int:
    return int(await conn.scalar(due_count()) or 0)


async def lock_due(conn: AsyncConnection, *, limit: int, skip: list[int]) -> list[DispatchTarget]:
    """Lock the next `limit` due processes (`due_batch`)."""
    return [_target(row) for row in await conn.execute(due_batch(limit, skip))]


# What a dispatch (a new Temporal run) writes, whoever records it. A retried process starts
# clean (no error; its attempts keep theirs). Moves to Dispatched without a new run (a resume,
# a wait for a lock key) go through _move and keep dispatched_at.
MARK_DISPATCHED = sa.text(
    f"""
    UPDATE workflow_processes AS p
    SET workflow_process_status_id = {ProcessStatus.DISPATCHED:d}, temporal_run_id = started.run_id, dispatched_at = now(),
        error = NULL, paused_from_status_id = NULL, updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:runs AS text[])) AS started(id, run_id)
    WHERE p.id = started.id
      AND p.workflow_process_status_id = ANY(CAST(:sources AS bigint[]))
      AND p.temporal_run_id IS DISTINCT FROM started.run_id
    RETURNING p.id, p.dispatched_at
    """
)


async def mark_dispatched(conn: AsyncConnection, started: Mapping[int, str]) -> dict[int, datetime]:
    """The dispatcher started these runs (process id -> run id), in one statement: each process
    moves to Dispatched from Created, Pending or Failed, unless its run already marked itself
    (a run writes its own id as it begins). Returns when each that moved was dispatched."""
    if not started:
        return {}
    return {row.id: row.dispatched_at for row in await conn.execute(MARK_DISPATCHED, _dispatched_params(started))}


def _dispatched_params(started: Mapping[int, str]) -> dict[str, Any]:
    return {"ids": list(started), "runs": list(started.values()), "sources": sorted(int(s) for s in DISPATCHABLE)}


async def _move(
    conn: AsyncConnection,
    change: StatusChange,
    *,
    run_id: str | None = None,
    sources: frozenset[ProcessStatus] | None = None,
    again: bool = False,
) -> bool:
    """Apply one status move if the process is in one of `sources` (default: every status the
    transition table allows the move from; `again`: and the target itself). Sets the
    timestamps that go with the target."""
    target = ProcessStatus(change.status)
    allowed = sources_of(target) if sources is None else sources & sources_of(target)
    if again:
        allowed |= {target}
    values: dict[str, Any] = {"workflow_process_status_id": target, "updated_at": sa.func.now()}
    if target is ProcessStatus.RUNNING:
        values["first_run_at"] = sa.func.coalesce(processes.c.first_run_at, sa.func.now())
        values["last_run_at"] = sa.func.now()
    elif target is ProcessStatus.PENDING and change.next_run_at is not None:
        values["next_run_at"] = change.next_run_at
    elif target is ProcessStatus.COMPLETED:
        values["completed_at"] = sa.func.now()
    if change.error is not None:
        values["error"] = change.error
    values["paused_from_status_id"] = change.paused_from if target is ProcessStatus.PAUSED else None
    statement = processes.update().where(
        processes.c.id == change.process_id,
        processes.c.workflow_process_status_id.in_([int(s) for s in allowed]),
    )
    if run_id is not None:
        values["temporal_run_id"] = run_id
    result = await conn.execute(statement.values(**values))
    return bool(result.rowcount)


async def fail_dispatch(conn: AsyncConnection, process_id: int, reason: str, *, seen: ProcessStatus | None = None) -> bool:
    """A process whose workflow Temporal will not start (it refuses the start's payload) is
    Failed with the reason, rather than left for the sweep to try again forever; `retry_process`
    may start it once the cause is fixed. From Created or Pending (or `seen`; a Failed process
    whose retry was refused gets the new reason)."""
    change = StatusChange(process_id, ProcessStatus.FAILED, error=reason)
    sources = SWEPT if seen is None else frozenset({seen})
    return await _move(conn, change, sources=sources, again=seen is ProcessStatus.FAILED)


#: An attempt's rows are looked for from a day before the start its writes carry (one write of
#: it may carry a later one: the workflow's close of it as abandoned), so that Postgres reads
#: only the months since, not every month the attempt log keeps.
_SINCE_ITS_START = "AND started_at >= CAST(:started_at AS timestamptz) - interval '1 day'"


#: Where the process came from, for an attempt row it writes: its position as the statement
#: begins (an attempt's own Success, in the same statement, moves it only after). The report's
#: transitions taken count these pairs (reporting_sql._STEPS).
_CAME_FROM = "(SELECT last_workflow_activity_id FROM workflow_processes WHERE id = :process_id)"


def _close_attempt(bound: str) -> str:
    """The CTEs that close an attempt (Success or Failure); `closed` holds its id if this wrote.
    The attempt is found by its key without started_at (which the attempt log's unique key
    holds, as its partitions ask) within `bound`: the workflow that closes an attempt whose
    worker died does not know when it started, and a worker that wakes after that close must find
    it closed. A closed attempt stays closed: a late or repeated write must not reopen or rewrite
    it. One never written is written closed."""
    return f"""
    attempt AS (
        SELECT id, started_at, workflow_process_activity_log_status_id AS status
        FROM workflow_process_activity_logs
        WHERE workflow_process_id = :process_id AND temporal_run_id = :run_id AND step = :step AND attempt = :attempt {bound}
    ), updated AS (
        UPDATE workflow_process_activity_logs AS l
        SET workflow_process_activity_log_status_id = :status, completed_at = :completed_at, error = CAST(:error AS text), updated_at = now()
        FROM attempt
        WHERE l.id = attempt.id AND l.started_at = attempt.started_at AND attempt.status = {AttemptStatus.IN_PROGRESS:d}
        RETURNING l.id
    ), inserted AS (
        INSERT INTO workflow_process_activity_logs
            (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id,
             started_at, completed_at, step, attempt, temporal_run_id, error, from_workflow_activity_id)
        SELECT :process_id, :activity_id, :status, :started_at, :completed_at, :step, :attempt, CAST(:run_id AS varchar), CAST(:error AS text),
               {_CAME_FROM}
        WHERE NOT EXISTS (SELECT 1 FROM attempt)
        ON CONFLICT ON CONSTRAINT workflow_process_activity_logs_attempt_key DO UPDATE  -- opened meanwhile
        SET workflow_process_activity_log_status_id = excluded.workflow_process_activity_log_status_id,
            completed_at = excluded.completed_at,
            error = excluded.error,
            updated_at = now()
        WHERE workflow_process_activity_logs.workflow_process_activity_log_status_id = {AttemptStatus.IN_PROGRESS:d}
        RETURNING id
    ), closed AS (
        SELECT id FROM updated UNION ALL SELECT id FROM inserted
    )
    """


#: A worker's close of its attempt as Failure.
FAIL_ATTEMPT = sa.text(f"WITH {_close_attempt(_SINCE_ITS_START)} SELECT id FROM closed")
#: The workflow's close, as Failure, of an attempt whose worker could not (it died or hung): when
#: it started is not known, so every month is looked at; one never written is written started now.
ABANDON_ATTEMPT = sa.text(f"WITH {_close_attempt('')} SELECT id FROM closed")

# The attempt's Success, its output tokens (in the order written), the process's new position
# and, for an activity no transition leaves, Running -> Completed, in one statement: all or
# nothing, and nothing at all if the attempt was closed already.
SUCCEED_ATTEMPT = sa.text(
    f"""
    WITH {_close_attempt(_SINCE_ITS_START)}, outputs AS (
        INSERT INTO workflow_process_tokens (workflow_process_id, workflow_activity_id, workflow_process_activity_log_id, key, value)
        SELECT :process_id, :activity_id, closed.id, output.key, output.value
        FROM closed, unnest(CAST(:keys AS text[]), CAST(:values AS text[])) WITH ORDINALITY AS output(key, value, n)
        ORDER BY output.n
    ), evaluated AS (
        INSERT INTO workflow_process_evaluations (workflow_process_id, workflow_activity_id, cause, workflow_transition_id, details)
        SELECT :process_id, :activity_id, :cause, CAST(:chosen AS bigint), CAST(:details AS text)
        FROM closed
        WHERE CAST(:details AS text) IS NOT NULL
    )
    UPDATE workflow_processes
    SET last_workflow_activity_id = :activity_id, updated_at = now(),
        workflow_process_status_id = CASE WHEN :completes AND workflow_process_status_id = {ProcessStatus.RUNNING:d} THEN {ProcessStatus.COMPLETED:d} ELSE workflow_process_status_id END,
        completed_at = CASE WHEN :completes AND workflow_process_status_id = {ProcessStatus.RUNNING:d} THEN now() ELSE completed_at END
    WHERE id = :process_id AND EXISTS (SELECT 1 FROM closed)
    RETURNING workflow_process_status_id = {ProcessStatus.COMPLETED:d}
    """
)


# A check of a process's transitions, folded into the process's last one if that took none and
# found the same at the same position for the same cause (a waiting process's re-checks).
RECORD_EVALUATION = sa.text(
    """
    WITH last AS (
        SELECT id, workflow_activity_id, workflow_transition_id, cause, details
        FROM workflow_process_evaluations
        WHERE workflow_process_id = :process_id
        ORDER BY id DESC
        LIMIT 1
    ), folded AS (
        UPDATE workflow_process_evaluations AS e
        SET checks = e.checks + 1, updated_at = now()
        FROM last
        WHERE e.id = last.id AND last.workflow_transition_id IS NULL AND CAST(:chosen AS bigint) IS NULL
          AND last.workflow_activity_id IS NOT DISTINCT FROM CAST(:activity_id AS bigint)
          AND last.cause = :cause AND last.details = CAST(:details AS text)
        RETURNING e.id
    )
    INSERT INTO workflow_process_evaluations (workflow_process_id, workflow_activity_id, cause, workflow_transition_id, details)
    SELECT :process_id, CAST(:activity_id AS bigint), :cause, CAST(:chosen AS bigint), CAST(:details AS text)
    WHERE NOT EXISTS (SELECT 1 FROM folded)
    """
)


def _open_attempt(source: str, when: str) -> str:
    """The CTEs that open an attempt's row as In Progress, from the one row of `source` if
    `when` holds, unless its step already succeeded (in an attempt whose worker died before
    reporting it): then nothing is written and `done` holds that Success row's id. Nor is it
    written if the attempt has a row already, whenever it started (the workflow closed it as
    abandoned, and this is its worker waking)."""
    return f"""
    done AS (
        SELECT id FROM workflow_process_activity_logs
        WHERE workflow_process_id = :process_id AND step = :step AND workflow_process_activity_log_status_id = {AttemptStatus.SUCCESS:d}
        LIMIT 1
    ), opened AS (
        INSERT INTO workflow_process_activity_logs
            (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id,
             started_at, completed_at, step, attempt, temporal_run_id, error, from_workflow_activity_id)
        SELECT :process_id, :activity_id, :status, :started_at, CAST(:completed_at AS timestamptz),
               :step, :attempt, CAST(:run_id AS varchar), CAST(:error AS text), {_CAME_FROM}
        FROM {source}
        WHERE {when} AND NOT EXISTS (SELECT 1 FROM done) AND NOT EXISTS (
            SELECT 1 FROM workflow_process_activity_logs
            WHERE workflow_process_id = :process_id AND temporal_run_id = :run_id AND step = :step AND attempt = :attempt {_SINCE_ITS_START}
        )
        ON CONFLICT ON CONSTRAINT workflow_process_activity_logs_attempt_key DO NOTHING
    )
    """


START_ATTEMPT = sa.text("WITH" + _open_attempt("(SELECT) AS one", "true") + "SELECT id FROM done")
#: The run's begin and its first attempt's In Progress row, written by that attempt of a process
#: whose plan came with its input; the row is opened only if the process is Running after the
#: begin (not paused or ended through the mirror meanwhile).
BEGIN_AND_START_ATTEMPT = sa.text(
    _BEGIN
    + ","
    + _open_attempt("target", f"target.status_now = {ProcessStatus.RUNNING:d}")
    + "SELECT target.status_now, (SELECT id FROM done) AS done_id FROM target"
)


def _attempt_params(
    key: AttemptKey, status: AttemptStatus, *, started_at: datetime, completed_at: datetime | None = None, error: str | None = None
) -> dict[str, Any]:
    return {
        "process_id": key.process_id,
        "activity_id": key.activity_id,
        "status": int(status),
        "started_at": started_at,
        "completed_at": completed_at,
        "step": key.step,
        "attempt": key.attempt,
        "run_id": key.run_id,
        "error": error,
    }


async def _load_activities(conn: AsyncConnection, head: Any) -> list[ActivityStep]:
    rows = (
        await conn.execute(
            sa.select(activities, activity_types.c.name.label("type_name"))
            .join(activity_types, activity_types.c.id == activities.c.workflow_activity_type_id)
            .where(activities.c.workflow_id == head.workflow_id)
            .order_by(activities.c.id)
        )
    ).all()
    params = (
        await conn.execute(
            sa.select(activity_parameters).where(activity_parameters.c.workflow_activity_id.in_([r.id for r in rows]))
        )
    ).all()
    return [
        ActivityStep(
            id=row.id,
            name=row.name,
            type_name=row.type_name,
            parameters=decode_parameters(p for p in params if p.workflow_activity_id == row.id),
            max_attempts=row.max_attempts or head.max_attempts,
            timeout_seconds=float(row.timeout or head.activity_timeout),
        )
        for row in rows
    ]


async def _load_listens(conn: AsyncConnection, workflow_id: int) -> list[Listening]:
    rows = await conn.execute(
        sa.select(events.c.name, listeners.c.match)
        .join(events, events.c.id == listeners.c.workflow_event_id)
        .where(listeners.c.workflow_id == workflow_id)
        .order_by(listeners.c.id)
    )
    return [Listening(row.name, json.loads(row.match)) for row in rows]


async def _load_transitions(conn: AsyncConnection, workflow_id: int) -> list[TransitionStep]:
    rows = (
        await conn.execute(
            sa.select(transitions)
            .where(transitions.c.workflow_id == workflow_id)
            .order_by(transitions.c.from_workflow_activity_id.nulls_first(), transitions.c.ordinal, transitions.c.id)
        )
    ).all()
    condition_rows = (
        await conn.execute(
            sa.select(conditions, condition_types.c.name.label("type_name"))
            .join(condition_types, condition_types.c.id == conditions.c.workflow_condition_type_id)
            .where(conditions.c.workflow_transition_id.in_([r.id for r in rows]))
            .order_by(conditions.c.ordinal, conditions.c.id)
        )
    ).all()
    params = (
        await conn.execute(
            sa.select(condition_parameters).where(
                condition_parameters.c.workflow_condition_id.in_([c.id for c in condition_rows])
            )
        )
    ).all()
    return [
        TransitionStep(
            id=row.id,
            from_activity_id=row.from_workflow_activity_id,
            to_activity_id=row.to_workflow_activity_id,
            ordinal=row.ordinal,
            after_seconds=row.after_seconds,
            conditions=[
                ConditionStep(c.type_name, decode_parameters(p for p in params if p.workflow_condition_id == c.id))
                for c in condition_rows
                if c.workflow_transition_id == row.id
            ],
        )
        for row in rows
    ]
