"""Determinism: recorded histories of the process workflows must replay on the code that runs them.

A change to the workflow code that would break running processes fails here. Each history
replays against the workflow type it was recorded with: `WorkflowProcess` (process_v1.py, kept
registered for runs started before the state-machine core) or `WorkflowProcessV2` (process.py).

To record fresh histories after an intended, versioned change:
WORKFLOWABLE_RECORD_HISTORIES=1 scripts/test tests/e2e/test_replay.py (it writes the `v2-*`
files: completed-readable, failed-readable, locked-first, locked-second, lock, continued (a run that continued as
new, and the run after it), cancelled-in-attempt, cancelled-by-mirror, delivered, caught-up,
delivered-by-hand and deadline); or
WORKFLOWABLE_RECORD_HISTORIES=v2-delivered,v2-deadline to write only those. Older recordings are kept beside them and
must replay too: `v2-completed` and `v2-failed` were recorded before payloads were written for
the web UI (sorted fields, defaults included, the status label as the result); completed,
failed, locked-first, locked-second and lock are the first type's;
its `*-plan-in-input` files were recorded once a trigger gave the workflow its plan, its
`*-attributes-set` files once the start also set the search attributes as Running.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from tests.conftest import eventually, unique
from tests.e2e.test_runner import GATE, Boom, FailingEvent, GateOpen, Noop, WaitingEvent
from workflowable import (
    ActivityContext,
    ActivityType,
    Condition,
    ProcessStatus,
    TokenEquals,
    Workflowable,
    WorkflowDefinition,
    WorkflowEvent,
)
from workflowable.codec import DATA_CONVERTER
from workflowable.worker import SANDBOX
from workflowable.workflows.locks import LockWorkflow, lock_workflow_id
from workflowable.workflows.messages import Delivery, Signals, workflow_id_for
from workflowable.workflows.process import InvalidRequest, ProcessWorkflow
from workflowable.workflows.process_v1 import ProcessWorkflowV1

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


def replayer(data_converter: DataConverter = DATA_CONVERTER) -> Replayer:
    return Replayer(workflows=[ProcessWorkflow, ProcessWorkflowV1, LockWorkflow], workflow_runner=SANDBOX, data_converter=data_converter)


class LockedEvent(WorkflowEvent):
    n: int

    def workflow_process_lock_key(self) -> str | None:
        return "replay-key"


async def test_recorded_histories_replay():
    files = sorted(HISTORIES.glob("*.json"))
    assert files, f"no recorded histories in {HISTORIES}"
    types = {WorkflowHistory.from_json(f.stem, f.read_text()).events[0].workflow_execution_started_event_attributes.workflow_type.name for f in files}
    assert {"WorkflowProcess", "WorkflowProcessV2", "WorkflowableLock"} <= types, types
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        # Either converter reads the other's payloads: either replays them.
        for converter in (DATA_CONVERTER, DataConverter.default):
            await replayer(converter).replay_workflow(history)


async def test_fresh_histories_replay(client, run_worker, task_queue):
    """A wait on a timer, a condition, a success and a failure, replayed right after they ran."""
    WaitingEvent.task_queue = FailingEvent.task_queue = task_queue
    GATE.clear()
    waiting = WorkflowDefinition(unique("replay-wait"), event=WaitingEvent, retry_interval=1)
    first, last = waiting.activity("first", Noop), waiting.activity("last", Noop)
    waiting.start(first)
    waiting.transition(first, last, when=[Condition(GateOpen)])
    failing = WorkflowDefinition(unique("replay-fail"), event=FailingEvent, max_attempts=2, retry_backoff=0.1)
    failing.start(failing.activity("boom", Boom))
    LockedEvent.task_queue = task_queue
    locked = WorkflowDefinition(unique("replay-lock"), event=LockedEvent)
    locked.start(locked.activity("only", Noop))
    for flow in (waiting, failing, locked):
        await client.save_workflow(flow, activate=True)
    async with run_worker([Noop, Boom, GateOpen], task_queue=task_queue):
        ran = [
            *await client.trigger_event(WaitingEvent(n=1)),
            *await client.trigger_event(FailingEvent(n=1)),
            *await client.trigger_event(LockedEvent(n=1)),
            *await client.trigger_event(LockedEvent(n=2)),
        ]
        for _ in range(100):
            if (await client.get_process(ran[0].id)).status is ProcessStatus.PENDING:
                break
            await asyncio.sleep(0.05)
        GATE.set()  # the waiting process passes on its next check, after its timer
        for process in ran:
            await client.wait_for_process(process.id, timeout=60)
    names = ("completed-readable", "failed-readable", "locked-first", "locked-second")
    handles = [client.temporal.get_workflow_handle(workflow_id_for(process.id)) for process in ran]
    handles.append(client.temporal.get_workflow_handle(lock_workflow_id("replay-key")))
    for name, handle in zip((*names, "lock"), handles, strict=True):
        await check_and_record(f"v2-{name}", await handle.fetch_history())
    for flow in (waiting, failing, locked):
        await client.deactivate_workflow(flow.name)


async def check_and_record(name: str, history: WorkflowHistory) -> None:
    for converter in (DATA_CONVERTER, DataConverter.default):
        await replayer(converter).replay_workflow(history)
    wanted = os.environ.get("WORKFLOWABLE_RECORD_HISTORIES", "")
    if wanted == "1" or name in wanted.split(","):
        (HISTORIES / f"{name}.json").write_text(history.to_json())


class ContinuedEvent(WorkflowEvent):
    n: int


async def test_continued_and_cancelled_runs_replay(client, settings, run_worker, task_queue):
    """A waiting process whose run continued as new (both runs), and a cancel during an attempt."""
    ContinuedEvent.task_queue = CancelledEvent.task_queue = task_queue
    GATE.clear()
    flow = WorkflowDefinition(unique("replay-continue"), event=ContinuedEvent, retry_interval=0.2)
    first, last = flow.activity("first", Noop), flow.activity("last", Noop)
    flow.start(first)
    flow.transition(first, last, when=[Condition(GateOpen)])
    slow = WorkflowDefinition(unique("replay-cancel"), event=CancelledEvent)
    slow.start(slow.activity("slow", Sleepy))
    for definition in (flow, slow):
        await client.save_workflow(definition, activate=True)
    often = Workflowable(settings.model_copy(update={"checks_per_run": 3}), client.database, client.temporal)
    async with run_worker([Noop, GateOpen, Sleepy], task_queue=task_queue):
        process, = await often.trigger_event(ContinuedEvent(n=1))
        handle = client.temporal.get_workflow_handle(workflow_id_for(process.id))
        first_run = (await handle.describe()).run_id

        async def continued() -> bool:
            return (await handle.describe()).run_id != first_run

        await eventually(continued, timeout=30)
        GATE.set()
        assert (await client.wait_for_process(process.id, timeout=30)).status is ProcessStatus.COMPLETED
        cancelled, = await client.trigger_event(CancelledEvent(n=1))
        await eventually(lambda: _in_attempt(client, cancelled.id))
        assert (await client.cancel_process(cancelled.id)).status is ProcessStatus.CANCELLED
    old = client.temporal.get_workflow_handle(workflow_id_for(process.id), run_id=first_run)
    await check_and_record("v2-continued", await old.fetch_history())
    await check_and_record("v2-continued-next", await handle.fetch_history())
    await check_and_record("v2-cancelled-in-attempt", await client.temporal.get_workflow_handle(workflow_id_for(cancelled.id)).fetch_history())
    for definition in (flow, slow):
        await client.deactivate_workflow(definition.name)


class CancelledEvent(WorkflowEvent):
    n: int


async def test_a_cancel_whose_write_outran_its_workflow_task_replays(client, run_worker, task_queue):
    """A cancel's status write reached the mirror, but the workflow task that took the cancel
    was lost (the server dropped it; the write is a local activity, so it ran before the task
    completed). A later pause finds the mirror Cancelled, the process takes that status and
    stops its attempt, and the cancel, delivered again, is answered done."""
    CancelledEvent.task_queue = task_queue
    slow = WorkflowDefinition(unique("replay-outran"), event=CancelledEvent)
    slow.start(slow.activity("slow", Sleepy))
    await client.save_workflow(slow, activate=True)
    async with run_worker([Sleepy], task_queue=task_queue):
        process, = await client.trigger_event(CancelledEvent(n=2))
        await eventually(lambda: _in_attempt(client, process.id))
        async with client.engine.begin() as conn:  # the lost task's write, as it stands in the mirror
            await conn.execute(
                sa.text("UPDATE workflow_processes SET workflow_process_status_id = :cancelled WHERE id = :id"),
                {"cancelled": int(ProcessStatus.CANCELLED), "id": process.id},
            )
        handle = client.temporal.get_workflow_handle(workflow_id_for(process.id))
        # Straight to the workflow, as requests already past the client's look at the mirror.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(Signals.PAUSE, id="pause-after-the-lost-task", result_type=str)
        assert InvalidRequest.status_in(refused.value.cause) is ProcessStatus.CANCELLED
        assert await handle.execute_update(Signals.CANCEL, id="the-cancel-again", result_type=str) == "Cancelled"
        assert (await client.wait_for_process(process.id, timeout=30)).status is ProcessStatus.CANCELLED
        assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
    await check_and_record("v2-cancelled-by-mirror", await handle.fetch_history())
    await client.deactivate_workflow(slow.name)


class ReplayOrder(WorkflowEvent):
    order_id: str


class ReplayDecision(WorkflowEvent):
    order_id: str
    decision: str


class ReplayDeadline(WorkflowEvent):
    n: int


async def test_delivered_and_deadline_runs_replay(client, run_worker, task_queue):
    """A waiting process that an event's delivery moves on; one whose signal was lost and whose
    check read the delivery from the mirror; one signalled by hand (it records the delivery);
    one that a deadline moves on."""
    ReplayOrder.task_queue = ReplayDeadline.task_queue = task_queue
    approval = WorkflowDefinition(unique("replay-approval"), event=ReplayOrder, retry_interval=3600)
    first, last = approval.activity("first", Noop), approval.activity("last", Noop)
    approval.start(first)
    approval.transition(first, last, when=[Condition(TokenEquals, {"key": "decision", "value": "yes"})])
    approval.listen(ReplayDecision, match=["order_id"])
    deadline = WorkflowDefinition(unique("replay-deadline"), event=ReplayDeadline, retry_interval=3600)
    wait, late = deadline.activity("wait", Noop), deadline.activity("late", Noop)
    deadline.start(wait)
    deadline.transition(wait, late, after=1)
    for flow in (approval, deadline):
        await client.save_workflow(flow, activate=True)
    async with run_worker([Noop], task_queue=task_queue):
        delivered, caught_up, by_hand = [(await client.trigger_event(ReplayOrder(order_id=order)))[0] for order in ("r-1", "r-2", "r-3")]
        late_one, = await client.trigger_event(ReplayDeadline(n=1))
        for process in (delivered, caught_up, by_hand):
            await eventually(lambda process=process: _is_pending(client, process.id))
        await client.trigger_event(ReplayDecision(order_id="r-1", decision="yes"))
        tokens = ReplayDecision(order_id="r-2", decision="yes").to_tokens()
        await client.mirror.trigger(ReplayDecision.class_path(), task_queue, None, tokens, next_run_at=None)  # no signal
        await client.wake_process(caught_up.id)
        by_hand_handle = client.temporal.get_workflow_handle(workflow_id_for(by_hand.id))
        await by_hand_handle.signal(Signals.DELIVER, Delivery("ReplayDecision", {"decision": "yes"}))
        for process in (delivered, caught_up, by_hand, late_one):
            assert (await client.wait_for_process(process.id, timeout=30)).status is ProcessStatus.COMPLETED
    for name, process in (("delivered", delivered), ("caught-up", caught_up), ("delivered-by-hand", by_hand), ("deadline", late_one)):
        await check_and_record(f"v2-{name}", await client.temporal.get_workflow_handle(workflow_id_for(process.id)).fetch_history())
    for flow in (approval, deadline):
        await client.deactivate_workflow(flow.name)


class Sleepy(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(60)


async def _in_attempt(client, process_id: int) -> bool:
    return bool((await client.get_live_state(process_id)) and (await client.get_process(process_id)).status is ProcessStatus.RUNNING)


async def test_a_run_of_the_first_workflow_type_completes_after_the_upgrade(client, settings, task_queue):
    """Deploy: a process started by a worker that knew only the first workflow type waits; the
    worker is replaced by one of this version; the process completes on the code that began it."""
    from temporalio.worker import Worker

    from workflowable.activities import ProcessActivities
    from workflowable.db.mirror import Mirror
    from workflowable.definitions import Catalog
    from workflowable.workflows.messages import PROCESS_WORKFLOW_V1, ProcessInput

    WaitingEvent.task_queue = task_queue
    GATE.clear()
    flow = WorkflowDefinition(unique("upgrade"), event=WaitingEvent, retry_interval=0.5)
    first, last = flow.activity("first", Noop), flow.activity("last", Noop)
    flow.start(first)
    flow.transition(first, last, when=[Condition(GateOpen)])
    await client.save_workflow(flow, activate=True)
    process, = await client.trigger_event(WaitingEvent(n=1), dispatch=False)
    activities = ProcessActivities(Mirror(client.database), Catalog.of([Noop, GateOpen])).all()
    old = Worker(client.temporal, task_queue=task_queue, workflows=[ProcessWorkflowV1, LockWorkflow], activities=activities, workflow_runner=SANDBOX)
    async with old:
        await client.temporal.start_workflow(PROCESS_WORKFLOW_V1, ProcessInput(process.id), id=workflow_id_for(process.id), task_queue=task_queue)
        await eventually(lambda: _is_pending(client, process.id))
    async with run_worker_for(settings, task_queue):
        GATE.set()
        done = await client.wait_for_process(process.id, timeout=30)
    assert done.status is ProcessStatus.COMPLETED
    assert [a.activity_name for a in done.attempts] == ["first", "last"]
    history = await client.temporal.get_workflow_handle(workflow_id_for(process.id)).fetch_history()
    assert history.events[0].workflow_execution_started_event_attributes.workflow_type.name == PROCESS_WORKFLOW_V1
    await check_and_record("v1-upgraded", history)
    await client.deactivate_workflow(flow.name)


async def _is_pending(client, process_id: int) -> bool:
    return (await client.get_process(process_id)).status is ProcessStatus.PENDING


def run_worker_for(settings, task_queue: str):
    from tests.conftest import serving

    return serving(settings, [Noop, GateOpen], task_queue=task_queue)
