"""Reading the mirror: one process with its tokens and attempts, process lists, the seed's queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .errors import ProcessNotFound
from .messages import workflow_id_for
from .models import activities, attempts, processes, tokens, workflows
from .states import AttemptStatus, ProcessStatus


@dataclass(frozen=True)
class Token:
    key: str
    value: str
    activity_id: int | None  #: None: an input token from the event
    activity_name: str | None


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
                Token(t.key, t.value, t.workflow_activity_id, t.activity_name) for t in token_rows if t.workflow_process_id == head.id
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


#: The seed documentation's example queries 1 and 2, verbatim but for the bound parameter.
SEED_QUERY_ATTEMPTS_OF_PROCESS = "SELECT * FROM workflow_process_activity_logs WHERE workflow_process_id = :workflow_process_id"
SEED_QUERY_FAILED_ATTEMPTS = (
    "SELECT * FROM workflow_process_activity_logs WHERE workflow_process_activity_log_status_id = :failure_status_id"
)
#: Query 3 in its Postgres form: MySQL's TIMESTAMPDIFF(SECOND, a, b) is EXTRACT(EPOCH FROM b - a).
SEED_QUERY_AVERAGE_DURATION = (
    "SELECT AVG(EXTRACT(EPOCH FROM (completed_at - started_at))) AS avg_execution_time "
    "FROM workflow_process_activity_logs WHERE workflow_activity_id = :activity_id"
)
