"""Mirror writes are safe to repeat and only ever move along the transition table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import unique
from workflowable import ActivityType, ProcessStatus, WorkflowDefinition, WorkflowEvent
from workflowable.db.mirror import AttemptKey
from workflowable.states import TRANSITIONS, AttemptStatus
from workflowable.workflows.messages import StatusChange

S = ProcessStatus


async def began(client, process_id: int, run_id: str) -> S:
    """The status a run finds its process in as it begins."""
    return S((await client.mirror.begin_process(process_id, run_id)).status)


class MirrorEvent(WorkflowEvent):
    n: int


class MirrorStep(ActivityType):
    pass


@pytest.fixture
async def process(client):
    flow = WorkflowDefinition(unique("mirror"), event=MirrorEvent)
    flow.start(flow.activity("step", MirrorStep))
    workflow_id = await client.save_workflow(flow, activate=True)
    created, = await client.trigger_event(MirrorEvent(n=1), dispatch=False)
    await client.deactivate_workflow(workflow_id)
    async with client.engine.connect() as conn:
        activity_id = await conn.scalar(sa.text("SELECT id FROM workflow_activities WHERE workflow_id = :w"), {"w": workflow_id})
    return created.id, activity_id


async def force_status(client, process_id: int, status: ProcessStatus) -> None:
    async with client.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE workflow_processes SET workflow_process_status_id = :s WHERE id = :p"), {"s": int(status), "p": process_id})


@pytest.mark.parametrize("source", list(S))
async def test_a_status_move_applies_only_if_the_table_allows_it(client, process, source):
    process_id, _ = process
    for target in S:
        await force_status(client, process_id, source)
        shown = await client.mirror.set_status(StatusChange(process_id, target))
        now = (await client.get_process(process_id)).status
        moved = target in TRANSITIONS[source]
        assert now == (target if moved else source), (source, target)
        assert shown == (now is target)  # True: the mirror shows the status asked for (a repeat included)


async def test_timestamps_follow_the_moves(client, process):
    process_id, _ = process
    await began(client, process_id, "run-1")
    first = await client.get_process(process_id)
    assert first.status is S.RUNNING and first.first_run_at is not None and first.last_run_at == first.first_run_at
    later = datetime.now(UTC) + timedelta(hours=1)
    await client.mirror.set_status(StatusChange(process_id, S.PENDING, next_run_at=later))
    assert (await client.get_process(process_id)).next_run_at == later
    await client.mirror.set_status(StatusChange(process_id, S.RUNNING))
    again = await client.get_process(process_id)
    assert again.first_run_at == first.first_run_at and again.last_run_at > first.last_run_at
    await client.mirror.set_status(StatusChange(process_id, S.COMPLETED))
    assert (await client.get_process(process_id)).completed_at is not None
    assert await began(client, process_id, "run-2") is S.COMPLETED  # a terminal state is never left
    assert (await client.get_process(process_id)).status is S.COMPLETED


async def test_a_run_starting_on_a_paused_or_failed_process(client, process):
    process_id, _ = process
    await force_status(client, process_id, S.PAUSED)
    assert await began(client, process_id, "run-0") is S.PAUSED  # stays paused until resumed
    await force_status(client, process_id, S.CREATED)
    assert await began(client, process_id, "run-1") is S.RUNNING
    await force_status(client, process_id, S.FAILED)
    assert await began(client, process_id, "run-1") is S.FAILED  # the failed run itself
    assert await began(client, process_id, "run-2") is S.RUNNING  # a retry's new run
    assert (await client.get_process(process_id)).error is None


async def test_a_dispatchers_late_write_never_undoes_its_run(client, process):
    process_id, _ = process
    assert await began(client, process_id, "run-1") is S.RUNNING  # the worker was first
    await client.mirror.set_status(StatusChange(process_id, S.PENDING))
    assert not await client.mirror.mark_dispatched(process_id, "run-1")
    assert (await client.get_process(process_id)).status is S.PENDING
    assert await client.mirror.mark_dispatched(process_id, "run-2")  # a sweep's new run


async def test_repeated_attempt_writes_leave_one_row(client, process):
    process_id, activity_id = process
    key = AttemptKey(process_id, activity_id, "run-1", step=1, attempt=1)
    start = datetime.now(UTC)
    end = start + timedelta(milliseconds=5)
    await client.mirror.start_attempt(key, start)
    await client.mirror.start_attempt(key, start)
    await client.mirror.succeed_attempt(key, start, end, {"out": "v"})
    await client.mirror.succeed_attempt(key, start, end + timedelta(seconds=1), {"out": "v"})  # a repeated close
    await client.mirror.start_attempt(key, start)  # a late retry of the In Progress write
    seen = await client.get_process(process_id)
    assert [(a.status, a.completed_at) for a in seen.attempts] == [(AttemptStatus.SUCCESS, end)]
    assert seen.position == activity_id
    assert [(t.key, t.value, t.activity_id) for t in seen.tokens if t.activity_id] == [("out", "v", activity_id)]

    second = AttemptKey(process_id, activity_id, "run-1", step=2, attempt=1)
    await client.mirror.start_attempt(second, end)
    await client.mirror.fail_attempt(second, end, end, "RuntimeError: no")
    await client.mirror.fail_attempt(second, end, end, "RuntimeError: no")
    seen = await client.get_process(process_id)
    assert [(a.step, a.status, a.error) for a in seen.attempts] == [
        (1, AttemptStatus.SUCCESS, None), (2, AttemptStatus.FAILURE, "RuntimeError: no")
    ]


async def test_an_abandoned_attempt_is_closed_in_its_own_row(client, process):
    """The workflow closes an attempt whose worker died without knowing when it started (the
    attempt log's key holds started_at): the open row is closed, keeping its start; an attempt
    never written gets one row; a closed one is left as it is; repeated, nothing changes. The
    worker, waking after that, can neither reopen it nor close it as a Success."""
    process_id, activity_id = process
    start = datetime.now(UTC) - timedelta(seconds=30)
    opened, unwritten, succeeded = (AttemptKey(process_id, activity_id, "run-1", step=n, attempt=1) for n in (1, 2, 3))
    await client.mirror.start_attempt(opened, start)
    await client.mirror.start_attempt(succeeded, start)
    await client.mirror.succeed_attempt(succeeded, start, start + timedelta(seconds=1), {})
    for _ in range(2):
        for key in (opened, unwritten, succeeded):
            await client.mirror.abandon_attempt(key, datetime.now(UTC), "worker lost")
    for key in (opened, unwritten):  # the hung worker wakes
        assert await client.mirror.start_attempt(key, start) is None
        assert not await client.mirror.succeed_attempt(key, start, datetime.now(UTC), {"late": "x"})
    seen = await client.get_process(process_id)
    rows = [(a.step, a.status, a.started_at == start, a.error) for a in sorted(seen.attempts, key=lambda a: a.step)]
    assert rows == [
        (1, AttemptStatus.FAILURE, True, "worker lost"),
        (2, AttemptStatus.FAILURE, False, "worker lost"),
        (3, AttemptStatus.SUCCESS, True, None),
    ]
    assert "late" not in seen.token_values


async def test_a_step_that_succeeded_is_not_started_again(client, process):
    """A worker that dies after committing a Success but before Temporal hears of it: the
    step's next attempt finds the Success and its outputs, and writes no second row."""
    process_id, activity_id = process
    first = AttemptKey(process_id, activity_id, "run-1", step=1, attempt=1)
    start = datetime.now(UTC)
    assert await client.mirror.start_attempt(first, start) is None
    await client.mirror.succeed_attempt(first, start, start, {"out": "v", "ünï": "ok"})
    retried = AttemptKey(process_id, activity_id, "run-1", step=1, attempt=2)
    assert await client.mirror.start_attempt(retried, start) == {"out": "v", "ünï": "ok"}
    seen = await client.get_process(process_id)
    assert [(a.attempt, a.status) for a in seen.attempts] == [(1, AttemptStatus.SUCCESS)]
    assert len([t for t in seen.tokens if t.activity_id]) == 2


@pytest.mark.parametrize("found", [S.CREATED, S.DISPATCHED, S.RUNNING, S.PAUSED, S.CANCELLED])
async def test_the_first_attempt_begins_the_run_and_opens_its_row_only_if_running(client, process, found):
    """A run whose plan came with its input: its first attempt writes the begin and its In
    Progress row in one statement; a process paused or ended meanwhile gets neither."""
    process_id, activity_id = process
    await force_status(client, process_id, found)
    key = AttemptKey(process_id, activity_id, "run-1", step=1, attempt=1)
    start = datetime.now(UTC)
    status, earlier = await client.mirror.begin_and_start_attempt(key, start)
    runs = found in (S.CREATED, S.DISPATCHED, S.RUNNING)
    assert (status, earlier) == ((S.RUNNING if runs else found), None)
    seen = await client.get_process(process_id)
    assert seen.status is status
    assert [(a.step, a.status, a.started_at) for a in seen.attempts] == ([(1, AttemptStatus.IN_PROGRESS, start)] if runs else [])
    if found is not S.RUNNING:  # (already Running: nothing to move, as for a repeated begin)
        assert (seen.first_run_at is not None) is runs
    if runs:
        await client.mirror.succeed_attempt(key, start, start, {"out": "v"})
        retried = AttemptKey(process_id, activity_id, "run-1", step=1, attempt=2)  # its worker died before reporting
        assert await client.mirror.begin_and_start_attempt(retried, start) == (S.RUNNING, {"out": "v"})
        assert [a.attempt for a in (await client.get_process(process_id)).attempts] == [1]
