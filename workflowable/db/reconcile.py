"""The mirror's side of `reconcile` (workflowable/reconcile.py, which compares with Temporal):
the processes to check and their attempts left In Progress, the finished processes among the
runs Temporal says are open, and the repair's writes. Every repair is conditional, so a process
that moves meanwhile is left to its workflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..states import AttemptStatus, ProcessStatus
from .mirror import mark_dispatched
from .models import attempts, processes

S = ProcessStatus


@dataclass(frozen=True)
class OpenAttempt:
    id: int
    step: int
    attempt: int
    run_id: str

    @property
    def activity_id(self) -> str:
        """The Temporal activity id the workflow gave this attempt."""
        return f"step-{self.step}.{self.attempt}"


@dataclass(frozen=True)
class Seen:
    """A process as the mirror shows it, to compare with its workflow."""

    process_id: int
    status: ProcessStatus
    paused_from: ProcessStatus | None
    open_attempts: tuple[OpenAttempt, ...]

    @property
    def never_dispatched(self) -> bool:
        return S.CREATED in (self.status, self.paused_from)


def to_check() -> sa.CompoundSelect:
    """The processes reconcile compares with Temporal: every one not Completed or Cancelled
    (Failed ones too: a retry's new run may have started without its write), and every one with
    an attempt row In Progress. A UNION of two index scans (status; attempts In Progress), where
    one WHERE with OR leaves Postgres only a scan of the whole process table."""
    columns = (processes.c.id, processes.c.workflow_process_status_id, processes.c.paused_from_status_id)
    not_ended = [int(s) for s in ProcessStatus if s not in (S.COMPLETED, S.CANCELLED)]
    with_open_attempts = sa.select(attempts.c.workflow_process_id).where(
        attempts.c.workflow_process_activity_log_status_id == AttemptStatus.IN_PROGRESS
    )
    return sa.union(
        sa.select(*columns).where(processes.c.workflow_process_status_id.in_(not_ended)),
        sa.select(*columns).where(processes.c.id.in_(with_open_attempts)),
    )


#: Every attempt row left In Progress, oldest first.
OPEN_ATTEMPTS = (
    sa.select(attempts.c.id, attempts.c.workflow_process_id, attempts.c.step, attempts.c.attempt, attempts.c.temporal_run_id)
    .where(attempts.c.workflow_process_activity_log_status_id == AttemptStatus.IN_PROGRESS)
    .order_by(attempts.c.id)
)


async def to_compare(engine: AsyncEngine) -> list[Seen]:
    """Every process `to_check` selects, with its attempts In Progress."""
    async with engine.connect() as conn:
        rows = (await conn.execute(to_check())).all()
        open_rows = (await conn.execute(OPEN_ATTEMPTS)).all()
    by_process: dict[int, list[OpenAttempt]] = {}
    for row in open_rows:
        by_process.setdefault(row.workflow_process_id, []).append(OpenAttempt(row.id, row.step, row.attempt, row.temporal_run_id))
    return [
        Seen(
            row.id,
            S(row.workflow_process_status_id),
            S(row.paused_from_status_id) if row.paused_from_status_id else None,
            tuple(by_process.get(row.id, ())),
        )
        for row in rows
    ]


async def ended_among(engine: AsyncEngine, process_ids: Iterable[int]) -> list[tuple[int, ProcessStatus]]:
    """(id, status) of the processes among `process_ids` the mirror shows Completed or Cancelled."""
    ended = [int(S.COMPLETED), int(S.CANCELLED)]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(processes.c.id, processes.c.workflow_process_status_id).where(
                    processes.c.id.in_(list(process_ids)), processes.c.workflow_process_status_id.in_(ended)
                )
            )
        ).all()
    return [(row.id, S(row.workflow_process_status_id)) for row in rows]


ABANDONED = "Abandoned: the attempt's worker stopped before closing it (closed by reconcile)"


async def repair(
    engine: AsyncEngine,
    process_id: int,
    seen: ProcessStatus,
    *,
    status: ProcessStatus | None = None,
    run_id: str | None = None,
    error: str | None = None,
    abandoned: tuple[int, ...] = (),
) -> bool:
    """Write one repair in one transaction: the process Dispatched with the run `run_id` (a lost
    dispatch write), or ended `status` (with `error`), if it is still `seen`; and the attempt
    rows `abandoned` closed as Failure if still In Progress. True if anything changed."""
    async with engine.begin() as conn:
        changed = False
        if status is S.DISPATCHED and run_id is not None:
            changed = bool(await mark_dispatched(conn, {process_id: run_id}))
        elif status is not None:
            changed = await repair_status(conn, process_id, seen, status, error)
        if abandoned:
            closed = await conn.execute(
                attempts.update()
                .where(attempts.c.id.in_(abandoned), attempts.c.workflow_process_activity_log_status_id == AttemptStatus.IN_PROGRESS)
                .values(
                    workflow_process_activity_log_status_id=AttemptStatus.FAILURE,
                    completed_at=sa.func.now(),
                    error=ABANDONED,
                    updated_at=sa.func.now(),
                )
            )
            changed = changed or bool(closed.rowcount)
    return changed


async def repair_status(conn: AsyncConnection, process_id: int, seen: ProcessStatus, target: ProcessStatus, error: str | None) -> bool:
    """Reconcile's write: how Temporal says the process ended, from whatever status the mirror
    shows (a workflow terminated while Paused ends a Paused process, which the transition table
    has no move for). Only to a terminal status, and only if the process is still in `seen`."""
    if not target.is_terminal:
        raise ValueError(f"reconcile only ends processes, not {target.label}")
    values: dict[str, Any] = {"workflow_process_status_id": target, "paused_from_status_id": None, "updated_at": sa.func.now()}
    if target is ProcessStatus.COMPLETED:
        values["completed_at"] = sa.func.coalesce(processes.c.completed_at, sa.func.now())
    if error is not None:
        values["error"] = error
    result = await conn.execute(
        processes.update().where(processes.c.id == process_id, processes.c.workflow_process_status_id == seen).values(**values)
    )
    return bool(result.rowcount)
