"""Determinism: recorded histories of the process workflow must replay on the current code.

A change to workflowable/workflow.py that would break running processes fails here. To record
fresh histories after an intended, versioned change: WORKFLOWABLE_RECORD_HISTORIES=1 scripts/test tests/e2e/test_replay.py
(it writes completed, failed, locked-first, locked-second and lock). Older recordings are kept
beside them and must replay too: the `*-plan-in-input` files are completed and failed recorded
once a trigger gave the workflow its plan (the older ones read it through `begin_process`); the
`*-attributes-set` files, once the start also set the search attributes as Running (the
workflow's first upsert is gone).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from tests.conftest import unique
from tests.e2e.test_runner import GATE, Boom, FailingEvent, GateOpen, Noop, WaitingEvent
from workflowable import Condition, ProcessStatus, WorkflowDefinition, WorkflowEvent
from workflowable.codec import DATA_CONVERTER
from workflowable.worker import SANDBOX
from workflowable.workflows.locks import LockWorkflow, lock_workflow_id
from workflowable.workflows.messages import workflow_id_for
from workflowable.workflows.process import ProcessWorkflow

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


def replayer(data_converter: DataConverter = DATA_CONVERTER) -> Replayer:
    return Replayer(workflows=[ProcessWorkflow, LockWorkflow], workflow_runner=SANDBOX, data_converter=data_converter)


class LockedEvent(WorkflowEvent):
    n: int

    def workflow_process_lock_key(self) -> str | None:
        return "replay-key"


async def test_recorded_histories_replay():
    files = sorted(HISTORIES.glob("*.json"))
    assert files, f"no recorded histories in {HISTORIES}"
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        # Ours writes the payloads Temporal's default converter writes: either replays them.
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
    names = ("completed", "failed", "locked-first", "locked-second")
    handles = [client.temporal.get_workflow_handle(workflow_id_for(process.id)) for process in ran]
    handles.append(client.temporal.get_workflow_handle(lock_workflow_id("replay-key")))
    for name, handle in zip((*names, "lock"), handles, strict=True):
        history = await handle.fetch_history()
        for converter in (DATA_CONVERTER, DataConverter.default):
            await replayer(converter).replay_workflow(history)
        if os.environ.get("WORKFLOWABLE_RECORD_HISTORIES"):
            (HISTORIES / f"{name}.json").write_text(history.to_json())
    for flow in (waiting, failing, locked):
        await client.deactivate_workflow(flow.name)
