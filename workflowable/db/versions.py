"""Workflow versions in the database: clone a workflow, replace one by another, and swaps that
move the live processes of a workflow onto another of the same event.

A swap moves a process by ending it (Cancelled, its error naming where it went) and creating
its successor on the new workflow at the mapped activity, with its input tokens and, if asked,
the output tokens of mapped activities, in one transaction with an audit row. A process whose
workflow is running moves at its next boundary (between activities, while waiting, while
paused): the swap signals it and the process's workflow makes the move itself. A process with no
running workflow is moved here directly. The Temporal side is `swaps.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..boundary import check_id
from ..errors import InvalidArgument, InvalidSwap, InvalidWorkflowStatusChange, WorkflowNotFound
from ..states import TERMINAL, ProcessStatus, SwapStatus, WorkflowStatus
from .models import (
    activities,
    activity_parameters,
    condition_parameters,
    conditions,
    listeners,
    processes,
    swap_audits,
    swap_maps,
    swaps,
    tokens,
    transitions,
    workflows,
)

S = ProcessStatus
LIVE = [int(s) for s in ProcessStatus if s not in TERMINAL]


# Workflows


async def find_workflow(conn: AsyncConnection, workflow: str | int, *, lock: bool = False) -> Any:
    """A workflow's row, by id or by name; `WorkflowNotFound` names what was looked for."""
    if isinstance(workflow, int) and not isinstance(workflow, bool):
        check_id(workflow, "workflow", lambda missing: WorkflowNotFound(f"no workflow has id {missing}"))
    elif not isinstance(workflow, str):
        raise InvalidArgument(f"a workflow is named by its name (str) or id (int), got {type(workflow).__name__} {workflow!r:.60}")
    elif len(workflow) > 255 or "\x00" in workflow:
        raise WorkflowNotFound(f"no workflow has name {workflow!r:.80}: names are 1 to 255 characters without NUL")
    key = workflows.c.id if isinstance(workflow, int) else workflows.c.name
    query = sa.select(workflows).where(key == workflow)
    row = (await conn.execute(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise WorkflowNotFound(f"no workflow has {'id' if isinstance(workflow, int) else 'name'} {workflow!r}")
    return row


async def clone_workflow(engine: AsyncEngine, source: str | int, name: str) -> int:
    """Copy a workflow (activities, parameters, transitions, conditions and their parameters,
    the events it listens for) into a new Draft called `name`; returns its id."""
    if not name or len(name) > 255:
        raise InvalidSwap(f"a workflow name is 1 to 255 characters, got {name!r}")
    async with engine.begin() as conn:
        original = await find_workflow(conn, source)
        if await conn.scalar(sa.select(workflows.c.id).where(workflows.c.name == name)) is not None:
            raise InvalidSwap(f"a workflow named {name!r} exists already")
        copied = {c: original._mapping[c] for c in ("description", "workflow_event_id", "workflow_priority_id", "retry_interval",
                                                    "max_attempts", "retry_backoff", "activity_timeout")}
        new_id = int((await conn.execute(
            workflows.insert().values(name=name, workflow_status_id=WorkflowStatus.DRAFT, **copied).returning(workflows.c.id)
        )).scalar_one())
        activity_ids = await _copy_rows(conn, activities, activities.c.workflow_id == original.id, {"workflow_id": new_id})
        await _copy_rows(conn, activity_parameters, activity_parameters.c.workflow_activity_id.in_(list(activity_ids)),
                         {}, remap={"workflow_activity_id": activity_ids})
        transition_ids = await _copy_rows(conn, transitions, transitions.c.workflow_id == original.id, {"workflow_id": new_id},
                                          remap={"from_workflow_activity_id": activity_ids, "to_workflow_activity_id": activity_ids})
        condition_ids = await _copy_rows(conn, conditions, conditions.c.workflow_transition_id.in_(list(transition_ids)),
                                         {}, remap={"workflow_transition_id": transition_ids})
        await _copy_rows(conn, condition_parameters, condition_parameters.c.workflow_condition_id.in_(list(condition_ids)),
                         {}, remap={"workflow_condition_id": condition_ids})
        await _copy_rows(conn, listeners, listeners.c.workflow_id == original.id, {"workflow_id": new_id})
    return new_id


async def _copy_rows(
    conn: AsyncConnection, table: sa.Table, where: Any, values: dict[str, Any], *, remap: Mapping[str, Mapping[int, int]] | None = None
) -> dict[int, int]:
    """Insert a copy of each row matching `where` with `values` set and the columns in `remap`
    translated through their maps; old id -> new id."""
    rows = (await conn.execute(sa.select(table).where(where).order_by(table.c.id))).all()
    copied: dict[int, int] = {}
    for row in rows:
        data = {k: v for k, v in row._mapping.items() if k not in ("id", "created_at", "updated_at")}
        for column, ids in (remap or {}).items():
            if data[column] is not None:
                data[column] = ids[data[column]]
        data.update(values)
        copied[row.id] = int((await conn.execute(table.insert().values(**data).returning(table.c.id))).scalar_one())
    return copied


async def replace_workflow(engine: AsyncEngine, old: str | int, new: str | int) -> None:
    """Activate `new` and deactivate `old` (Active, of the same event) in one transaction."""
    async with engine.begin() as conn:
        await _replace(conn, await find_workflow(conn, old, lock=True), await find_workflow(conn, new, lock=True))


async def _replace(conn: AsyncConnection, old: Any, new: Any) -> None:
    if old.workflow_event_id != new.workflow_event_id:
        raise InvalidSwap(f"workflows {old.name!r} and {new.name!r} are triggered by different events")
    if old.workflow_status_id != WorkflowStatus.ACTIVE and new.workflow_status_id == WorkflowStatus.ACTIVE:
        return  # replaced already (a repeated step of a swap)
    if old.workflow_status_id != WorkflowStatus.ACTIVE:
        raise InvalidWorkflowStatusChange(f"workflow {old.name!r} is {WorkflowStatus(old.workflow_status_id).label}, not Active")
    if new.workflow_status_id not in (WorkflowStatus.DRAFT, WorkflowStatus.DEACTIVATED):
        raise InvalidWorkflowStatusChange(f"workflow {new.name!r} is {WorkflowStatus(new.workflow_status_id).label}; it must be Draft or Deactivated")
    for row, status in ((old, WorkflowStatus.DEACTIVATED), (new, WorkflowStatus.ACTIVE)):
        await conn.execute(workflows.update().where(workflows.c.id == row.id).values(workflow_status_id=status, updated_at=sa.func.now()))


# Swaps: set-up


@dataclass(frozen=True)
class SwapInfo:
    """A swap as the mirror has it, with its progress."""

    id: int
    status: SwapStatus
    from_workflow: str
    to_workflow: str
    transfer_output_tokens: bool
    activity_map: dict[str, str | None]  #: old activity name -> new activity name (None: the start)
    scheduled_at: datetime | None
    dispatched_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    moved: int  #: audit rows: processes moved so far
    remaining: int  #: live processes still on the old workflow


async def create_swap(
    engine: AsyncEngine,
    old: str | int,
    new: str | int,
    activity_map: Mapping[str, str | None] | None = None,
    *,
    transfer_output_tokens: bool = True,
) -> int:
    """A Draft swap from `old` to `new` (same event). Each old activity maps to a new activity
    by name, or to None (start over); unnamed ones map to the new activity of the same name,
    else to the start."""
    async with engine.begin() as conn:
        source, target = await find_workflow(conn, old), await find_workflow(conn, new)
        if source.id == target.id:
            raise InvalidSwap(f"a swap needs two workflows; both are {source.name!r}")
        if source.workflow_event_id != target.workflow_event_id:
            raise InvalidSwap(f"workflows {source.name!r} and {target.name!r} are triggered by different events")
        if target.workflow_status_id == WorkflowStatus.ARCHIVED:
            raise InvalidSwap(f"workflow {target.name!r} is Archived: processes cannot move onto it")
        old_ids = await _activity_ids(conn, source.id)
        new_ids = await _activity_ids(conn, target.id)
        given = dict(activity_map or {})
        unknown = sorted(set(given) - set(old_ids))
        if unknown:
            raise InvalidSwap(f"workflow {source.name!r} has no activity {', '.join(map(repr, unknown))}")
        missing = sorted({v for v in given.values() if v is not None} - set(new_ids))
        if missing:
            raise InvalidSwap(f"workflow {target.name!r} has no activity {', '.join(map(repr, missing))}")
        swap_id = int((await conn.execute(
            swaps.insert().values(from_workflow_id=source.id, to_workflow_id=target.id, workflow_swap_status_id=SwapStatus.DRAFT,
                                  should_transfer_output_tokens=transfer_output_tokens).returning(swaps.c.id)
        )).scalar_one())
        rows = []
        for name, old_id in old_ids.items():
            to_name = given[name] if name in given else (name if name in new_ids else None)
            rows.append({"workflow_swap_id": swap_id, "from_workflow_activity_id": old_id,
                         "to_workflow_activity_id": new_ids[to_name] if to_name else None})
        if rows:
            await conn.execute(swap_maps.insert(), rows)
    return swap_id


async def _activity_ids(conn: AsyncConnection, workflow_id: int) -> dict[str, int]:
    rows = await conn.execute(sa.select(activities.c.name, activities.c.id).where(activities.c.workflow_id == workflow_id).order_by(activities.c.id))
    return {row.name: row.id for row in rows}


async def move_swap(engine: AsyncEngine, swap_id: int, target: SwapStatus, *, scheduled_at: datetime | None = None) -> SwapStatus:
    """Schedule (Draft -> Scheduled) or dispatch (Draft or Scheduled -> Dispatched) a swap;
    returns the status it was in."""
    sources = {SwapStatus.SCHEDULED: (SwapStatus.DRAFT,), SwapStatus.DISPATCHED: (SwapStatus.DRAFT, SwapStatus.SCHEDULED)}[target]
    async with engine.begin() as conn:
        current = await _swap_status(conn, swap_id, lock=True)
        if current not in sources:
            verb = "schedule" if target is SwapStatus.SCHEDULED else "dispatch"
            raise InvalidSwap(f"swap {swap_id} is {current.label}: cannot {verb} it")
        values: dict[str, Any] = {"workflow_swap_status_id": target, "updated_at": sa.func.now()}
        if target is SwapStatus.SCHEDULED:
            values["scheduled_at"] = scheduled_at
        else:
            values["dispatched_at"] = sa.func.now()
        await conn.execute(swaps.update().where(swaps.c.id == swap_id).values(**values))
    return current


async def _swap_status(conn: AsyncConnection, swap_id: int, *, lock: bool = False) -> SwapStatus:
    query = sa.select(swaps.c.workflow_swap_status_id).where(swaps.c.id == swap_id)
    status = await conn.scalar(query.with_for_update() if lock else query)
    if status is None:
        raise InvalidSwap(f"no swap has id {swap_id}")
    return SwapStatus(status)


async def get_swap(engine: AsyncEngine, swap_id: int) -> SwapInfo:
    old_workflow, new_workflow = workflows.alias("old_workflow"), workflows.alias("new_workflow")
    old_activity, new_activity = activities.alias("old_activity"), activities.alias("new_activity")
    async with engine.connect() as conn:
        row = (await conn.execute(
            sa.select(swaps, old_workflow.c.name.label("from_name"), new_workflow.c.name.label("to_name"))
            .join(old_workflow, old_workflow.c.id == swaps.c.from_workflow_id)
            .join(new_workflow, new_workflow.c.id == swaps.c.to_workflow_id)
            .where(swaps.c.id == swap_id)
        )).one_or_none()
        if row is None:
            raise InvalidSwap(f"no swap has id {swap_id}")
        mapped = await conn.execute(
            sa.select(old_activity.c.name.label("old"), new_activity.c.name.label("new"))
            .select_from(swap_maps)
            .join(old_activity, old_activity.c.id == swap_maps.c.from_workflow_activity_id)
            .outerjoin(new_activity, new_activity.c.id == swap_maps.c.to_workflow_activity_id)
            .where(swap_maps.c.workflow_swap_id == swap_id)
            .order_by(old_activity.c.id)
        )
        activity_map = {m.old: m.new for m in mapped}
        moved = await conn.scalar(sa.select(sa.func.count()).select_from(swap_audits).where(swap_audits.c.workflow_swap_id == swap_id))
        remaining = await count_live(conn, row.from_workflow_id)
    return SwapInfo(
        id=row.id, status=SwapStatus(row.workflow_swap_status_id), from_workflow=row.from_name, to_workflow=row.to_name,
        transfer_output_tokens=row.should_transfer_output_tokens, activity_map=activity_map, scheduled_at=row.scheduled_at,
        dispatched_at=row.dispatched_at, started_at=row.started_at, completed_at=row.completed_at, moved=int(moved or 0),
        remaining=remaining,
    )


async def count_live(conn: AsyncConnection, workflow_id: int) -> int:
    """Processes of the workflow that have not ended."""
    query = sa.select(sa.func.count()).where(processes.c.workflow_id == workflow_id, processes.c.workflow_process_status_id.in_(LIVE))
    return int(await conn.scalar(query) or 0)


def holding_swaps(workflow_id: Any) -> Any:
    """SQL: whether a running swap holds back dispatches of `workflow_id` (a column or value)."""
    return sa.exists().where(
        swaps.c.workflow_swap_status_id.in_([int(s) for s in SwapStatus if s.holds_dispatch]),
        sa.or_(swaps.c.from_workflow_id == workflow_id, swaps.c.to_workflow_id == workflow_id),
    )


# Swaps: running


@dataclass(frozen=True)
class LiveProcess:
    id: int
    status: ProcessStatus
    run_id: str | None


async def begin_swap(engine: AsyncEngine, swap_id: int) -> None:
    """The swap starts: Processing, and the new workflow replaces the old one for new events."""
    async with engine.begin() as conn:
        row = (await conn.execute(sa.select(swaps).where(swaps.c.id == swap_id).with_for_update())).one_or_none()
        if row is None:
            raise InvalidSwap(f"no swap has id {swap_id}")
        if row.workflow_swap_status_id in (SwapStatus.PROCESSING, SwapStatus.COMPLETED):
            return  # a repeated step
        await conn.execute(swaps.update().where(swaps.c.id == swap_id).values(
            workflow_swap_status_id=SwapStatus.PROCESSING, started_at=sa.func.now(),
            dispatched_at=sa.func.coalesce(swaps.c.dispatched_at, sa.func.now()), updated_at=sa.func.now(),
        ))
        old = await find_workflow(conn, row.from_workflow_id, lock=True)
        new = await find_workflow(conn, row.to_workflow_id, lock=True)
        if old.workflow_status_id == WorkflowStatus.ACTIVE:
            await _replace(conn, old, new)
        elif new.workflow_status_id in (WorkflowStatus.DRAFT, WorkflowStatus.DEACTIVATED):  # the old one was retired already
            await conn.execute(workflows.update().where(workflows.c.id == new.id).values(workflow_status_id=WorkflowStatus.ACTIVE))


async def live_processes(engine: AsyncEngine, swap_id: int) -> list[LiveProcess]:
    """The processes still to move: every one on the old workflow that has not ended."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(processes.c.id, processes.c.workflow_process_status_id, processes.c.temporal_run_id)
            .join(swaps, swaps.c.from_workflow_id == processes.c.workflow_id)
            .where(swaps.c.id == swap_id, processes.c.workflow_process_status_id.in_(LIVE))
            .order_by(processes.c.id)
        )
        return [LiveProcess(row.id, S(row.workflow_process_status_id), row.temporal_run_id) for row in rows]


async def move_process(engine: AsyncEngine, swap_id: int, process_id: int, *, run_id: str | None) -> int | None:
    """Move one process onto the swap's new workflow, in one transaction; the new process's id,
    or None if it is no longer a live process of the old workflow on run `run_id` (it ended,
    moved, or a run began meanwhile). Repeating a move that happened returns the same id."""
    async with engine.begin() as conn:
        done = await conn.scalar(sa.select(swap_audits.c.to_workflow_process_id).where(
            swap_audits.c.workflow_swap_id == swap_id, swap_audits.c.from_workflow_process_id == process_id))
        if done is not None:
            return int(done)
        swap = (await conn.execute(sa.select(swaps).where(swaps.c.id == swap_id))).one()
        old = (await conn.execute(sa.select(processes).where(processes.c.id == process_id).with_for_update())).one_or_none()
        if (old is None or old.workflow_id != swap.from_workflow_id or S(old.workflow_process_status_id).is_terminal
                or old.temporal_run_id != run_id):
            return None
        mapping = {m.from_workflow_activity_id: m.to_workflow_activity_id for m in await conn.execute(
            sa.select(swap_maps.c.from_workflow_activity_id, swap_maps.c.to_workflow_activity_id).where(swap_maps.c.workflow_swap_id == swap_id))}
        position = mapping.get(old.last_workflow_activity_id) if old.last_workflow_activity_id else None
        paused = old.workflow_process_status_id == S.PAUSED
        new_id = int((await conn.execute(processes.insert().values(
            workflow_id=swap.to_workflow_id,
            workflow_process_status_id=S.PAUSED if paused else S.CREATED,
            paused_from_status_id=S.CREATED if paused else None,
            last_workflow_activity_id=position,
            queue=old.queue,
            lock_key=old.lock_key,
            first_run_at=old.first_run_at,
            last_run_at=old.last_run_at,
        ).returning(processes.c.id))).scalar_one())
        await _copy_tokens(conn, process_id, new_id, mapping if swap.should_transfer_output_tokens else {})
        to_name = await conn.scalar(sa.select(workflows.c.name).where(workflows.c.id == swap.to_workflow_id))
        await conn.execute(processes.update().where(processes.c.id == process_id).values(
            workflow_process_status_id=S.CANCELLED, paused_from_status_id=None, updated_at=sa.func.now(),
            error=f"moved by swap {swap_id} to process {new_id} of workflow {to_name!r}",
        ))
        await conn.execute(swap_audits.insert().values(
            workflow_swap_id=swap_id, from_workflow_process_id=process_id, from_workflow_activity_id=old.last_workflow_activity_id,
            to_workflow_process_id=new_id, to_workflow_activity_id=position,
        ))
    return new_id


async def _copy_tokens(conn: AsyncConnection, old_id: int, new_id: int, mapping: Mapping[int, int | None]) -> None:
    """Input tokens, and output tokens of mapped activities (re-attributed to the activity
    they map to), in the order they were written."""
    rows = (await conn.execute(sa.select(tokens.c.workflow_activity_id, tokens.c.key, tokens.c.value)
                               .where(tokens.c.workflow_process_id == old_id).order_by(tokens.c.id))).all()
    copies = [
        {"workflow_process_id": new_id, "workflow_activity_id": mapping.get(row.workflow_activity_id) if row.workflow_activity_id else None,
         "key": row.key, "value": row.value}
        for row in rows
        if row.workflow_activity_id is None or mapping.get(row.workflow_activity_id) is not None
    ]
    if copies:
        await conn.execute(tokens.insert(), copies)


@dataclass(frozen=True)
class HeldBack:
    """What a completed swap dispatches: processes it held back or created (Created, due), and
    processes it moved while paused from a dispatched run (started paused, to resume later)."""

    created: list[int]
    paused: list[int]


async def finish_swap(engine: AsyncEngine, swap_id: int) -> HeldBack:
    """Every live process has moved: Completed, the old workflow archived if nothing is left on
    it, and what to dispatch now."""
    async with engine.begin() as conn:
        swap = (await conn.execute(sa.select(swaps).where(swaps.c.id == swap_id).with_for_update())).one()
        if swap.workflow_swap_status_id != SwapStatus.COMPLETED:
            await conn.execute(swaps.update().where(swaps.c.id == swap_id).values(
                workflow_swap_status_id=SwapStatus.COMPLETED, completed_at=sa.func.now(), updated_at=sa.func.now()))
            old = await find_workflow(conn, swap.from_workflow_id, lock=True)
            if old.workflow_status_id == WorkflowStatus.DEACTIVATED and not await count_live(conn, old.id):
                await conn.execute(workflows.update().where(workflows.c.id == old.id).values(
                    workflow_status_id=WorkflowStatus.ARCHIVED, updated_at=sa.func.now()))
        created = await conn.execute(
            sa.select(processes.c.id).where(
                processes.c.workflow_id.in_([swap.from_workflow_id, swap.to_workflow_id]),
                processes.c.workflow_process_status_id == S.CREATED,
                processes.c.temporal_run_id.is_(None),
                processes.c.next_run_at <= sa.func.now(),
                ~holding_swaps(processes.c.workflow_id),
            ).order_by(processes.c.id)
        )
        before = processes.alias("before")
        paused = await conn.execute(
            sa.select(processes.c.id)
            .join(swap_audits, swap_audits.c.to_workflow_process_id == processes.c.id)
            .join(before, before.c.id == swap_audits.c.from_workflow_process_id)
            .where(
                swap_audits.c.workflow_swap_id == swap_id,
                processes.c.workflow_process_status_id == S.PAUSED,
                processes.c.paused_from_status_id == S.CREATED,
                processes.c.temporal_run_id.is_(None),
                before.c.temporal_run_id.is_not(None),
            ).order_by(processes.c.id)
        )
        return HeldBack([row.id for row in created], [row.id for row in paused])


async def mark_started_paused(engine: AsyncEngine, process_id: int, run_id: str) -> bool:
    """A paused process's workflow was started: it is now paused from Dispatched (a resume
    goes through its workflow), unless it was resumed meanwhile."""
    async with engine.begin() as conn:
        result = await conn.execute(processes.update().where(
            processes.c.id == process_id,
            processes.c.workflow_process_status_id == S.PAUSED,
            processes.c.paused_from_status_id == S.CREATED,
            processes.c.temporal_run_id.is_(None),
        ).values(paused_from_status_id=S.DISPATCHED, temporal_run_id=run_id, dispatched_at=sa.func.now(), updated_at=sa.func.now()))
        return bool(result.rowcount)


async def is_held(conn: AsyncConnection, process_id: int) -> bool:
    """Whether a running swap holds back the dispatch of this process."""
    return bool(await conn.scalar(sa.select(holding_swaps(processes.c.workflow_id)).where(processes.c.id == process_id)))
