"""Pause, resume and cancel: through the client (updates), the temporal CLI (signals), and in
every status a process can be in."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time

import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.conftest import eventually, serving, unique
from tests.e2e.flows import GATE, TYPES, Boom, FailEvent, GateOpen, QuickEvent, Sleep, SlowEvent, UnservedEvent, WaitEvent
from workflowable import Condition, InvalidStateChange, ProcessStatus, WorkflowDefinition
from workflowable.ops.devstack import temporal_binary
from workflowable.states import AttemptStatus, Request
from workflowable.workflows.messages import workflow_id_for

S = ProcessStatus
QUEUE = unique("control")


@pytest.fixture(scope="module")
async def worker(client, settings):
    """One worker for the module, serving QUEUE; every event but UnservedEvent goes there."""
    for event in (QuickEvent, SlowEvent, WaitEvent, FailEvent):
        event.task_queue = QUEUE
    GATE["open"] = False
    quick = WorkflowDefinition(unique("quick"), event=QuickEvent)
    quick.start(quick.activity("only", Sleep))
    slow = WorkflowDefinition(unique("slow"), event=SlowEvent)
    slow_step, after = slow.activity("slow", Sleep), slow.activity("after", Sleep, {"seconds": 0})
    slow.start(slow_step)
    slow.transition(slow_step, after)
    waiting = WorkflowDefinition(unique("wait"), event=WaitEvent, retry_interval=3600)
    first, second = waiting.activity("first", Sleep), waiting.activity("second", Sleep)
    waiting.start(first)
    waiting.transition(first, second, when=[Condition(GateOpen)])
    failing = WorkflowDefinition(unique("fail"), event=FailEvent, max_attempts=1)
    failing.start(failing.activity("boom", Boom))
    unserved = WorkflowDefinition(unique("unserved"), event=UnservedEvent)
    unserved.start(unserved.activity("never", Sleep))
    flows = [quick, slow, waiting, failing, unserved]
    for flow in flows:
        await client.save_workflow(flow, activate=True)
    try:
        async with serving(settings, TYPES, task_queue=QUEUE):
            yield
    finally:
        for flow in flows:
            await client.deactivate_workflow(flow.name)


async def status_of(client, process_id: int) -> ProcessStatus:
    return (await client.get_process(process_id)).status


async def attempt_in_flight(client, process_id: int) -> bool:
    process = await client.get_process(process_id)
    return bool(process.attempts) and process.attempts[-1].status is AttemptStatus.IN_PROGRESS


async def running_slowly(client, seconds: float = 30) -> int:
    process, = await client.trigger_event(SlowEvent(seconds=seconds))
    await eventually(lambda: attempt_in_flight(client, process.id))
    return process.id


async def in_state(client, state: ProcessStatus) -> int:
    """A new process in `state`."""
    if state is S.CREATED:
        return (await client.trigger_event(QuickEvent(n=1), dispatch=False))[0].id
    if state is S.DISPATCHED:
        return (await client.trigger_event(UnservedEvent(n=1)))[0].id
    if state is S.PENDING:
        process, = await client.trigger_event(WaitEvent(n=1))
        await eventually(lambda: _is(client, process.id, S.PENDING))
        return process.id
    if state is S.RUNNING:
        return await running_slowly(client)
    if state is S.PAUSED:
        process_id = await running_slowly(client)
        await client.pause_process(process_id)
        return process_id
    if state is S.FAILED:
        process, = await client.trigger_event(FailEvent(n=1))
        return (await client.wait_for_process(process.id)).id
    if state is S.COMPLETED:
        process, = await client.trigger_event(QuickEvent(n=1))
        return (await client.wait_for_process(process.id)).id
    process_id = (await client.trigger_event(QuickEvent(n=1), dispatch=False))[0].id
    await client.cancel_process(process_id)
    return process_id


async def _is(client, process_id: int, status: ProcessStatus) -> bool:
    return await status_of(client, process_id) is status


async def cleanup(client, process_id: int) -> None:
    if not (await status_of(client, process_id)).is_terminal:
        await client.cancel_process(process_id)


async def request(client, process_id: int, kind: Request):
    call = {
        Request.PAUSE: client.pause_process,
        Request.RESUME: client.resume_process,
        Request.CANCEL: client.cancel_process,
        Request.RETRY: client.retry_process,
    }[kind]
    if kind is Request.RETRY:
        return await call(process_id)
    # 200 requests at once queue up behind the server's ten updates in flight per workflow:
    # allow for a slow machine rather than fail on time.
    return await call(process_id, timeout=180)


EXPECTED = {
    Request.PAUSE: lambda before: {S.PAUSED},
    Request.RESUME: lambda before: {S.RUNNING},  # the Paused processes here were paused while running
    Request.CANCEL: lambda before: {S.CANCELLED},
    Request.RETRY: lambda before: {S.DISPATCHED, S.RUNNING, S.FAILED},  # it runs again (and fails again)
}


@pytest.mark.parametrize("kind", list(Request))
@pytest.mark.parametrize("state", list(S))
async def test_every_request_in_every_state(client, worker, state, kind):
    process_id = await in_state(client, state)
    before = await client.get_process(process_id)
    assert before.status is state
    try:
        if kind.allowed_from(state):
            after = await request(client, process_id, kind)
            assert after.status in EXPECTED[kind](state)
            if kind is Request.PAUSE:
                assert after.paused_from is state
            if kind is Request.RETRY:
                retried = await client.wait_for_process(process_id)
                assert retried.status is S.FAILED
                assert [a.attempt for a in retried.attempts] == [1, 1]
                assert len({a.step for a in retried.attempts}) == 2  # the retry's run continued the step count
        else:
            with pytest.raises(InvalidStateChange) as caught:
                await request(client, process_id, kind)
            assert (caught.value.process_id, caught.value.status, caught.value.request) == (process_id, state, kind.value)
            assert f"process {process_id} is {state.label}: cannot {kind.value} it" == str(caught.value)
            assert await client.get_process(process_id) == before  # nothing changed
    finally:
        await cleanup(client, process_id)


async def test_pause_lets_the_attempt_finish_and_starts_no_other_until_resume(client, worker):
    process, = await client.trigger_event(SlowEvent(seconds=2))
    await eventually(lambda: attempt_in_flight(client, process.id))
    started = time.monotonic()
    paused = await client.pause_process(process.id)
    assert time.monotonic() - started < 1.5
    assert paused.status is S.PAUSED and paused.attempts[-1].status is AttemptStatus.IN_PROGRESS

    finished = await eventually(lambda: _first_attempt_closed(client, process.id))
    assert finished.attempts[0].status is AttemptStatus.SUCCESS and finished.status is S.PAUSED
    await asyncio.sleep(1.5)
    still = await client.get_process(process.id)
    assert still.status is S.PAUSED and len(still.attempts) == 1 and still.position_name == "slow"
    assert (await client.get_live_state(process.id)).status_label == "Paused"

    resumed = await client.resume_process(process.id)
    assert resumed.status is S.RUNNING
    done = await client.wait_for_process(process.id)
    assert done.status is S.COMPLETED
    assert [a.activity_name for a in done.attempts] == ["slow", "after"]
    assert done.attempts[1].started_at > finished.attempts[0].completed_at


async def _first_attempt_closed(client, process_id: int):
    process = await client.get_process(process_id)
    return process if process.attempts[0].status is not AttemptStatus.IN_PROGRESS else None


async def test_cancel_reaches_a_long_activity_within_seconds(client, worker):
    process_id = await running_slowly(client, seconds=30)
    started = time.monotonic()
    cancelled = await client.cancel_process(process_id)
    elapsed = time.monotonic() - started
    assert cancelled.status is S.CANCELLED
    assert elapsed < 10, elapsed
    attempt = cancelled.attempts[-1]
    assert attempt.status is AttemptStatus.FAILURE and attempt.completed_at is not None
    assert attempt.error.startswith("Cancelled")
    description = await client.temporal.get_workflow_handle(workflow_id_for(process_id)).describe()
    assert description.status is WorkflowExecutionStatus.CANCELED


async def test_a_paused_process_can_be_cancelled(client, worker):
    process_id = await in_state(client, S.PAUSED)
    cancelled = await client.cancel_process(process_id)
    assert cancelled.status is S.CANCELLED


async def test_two_hundred_shuffled_requests_end_in_the_last_valid_one(client, worker):
    process_id = await running_slowly(client, seconds=120)
    kinds = [Request.PAUSE, Request.RESUME] * 100
    random.Random(3).shuffle(kinds)
    try:
        results = await asyncio.gather(*(request(client, process_id, kind) for kind in kinds), return_exceptions=True)
        unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, InvalidStateChange)]
        assert not unexpected, unexpected
        accepted = {kind: sum(1 for k, r in zip(kinds, results, strict=True) if k is kind and not isinstance(r, BaseException)) for kind in kinds}
        # Each accepted request was valid when applied, so accepted pauses and resumes alternate.
        assert accepted[Request.PAUSE] - accepted[Request.RESUME] in (0, 1)
        expected = S.PAUSED if accepted[Request.PAUSE] > accepted[Request.RESUME] else S.RUNNING
        live = await client.get_live_state(process_id)
        assert live.status_label == expected.label
        assert await eventually(lambda: _is(client, process_id, expected), timeout=10)
    finally:
        await cleanup(client, process_id)


def temporal_cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(temporal_binary()), *args, "--address", settings.temporal_target],
        capture_output=True, text=True, timeout=60,
    )


async def test_signals_from_the_temporal_cli_reach_the_mirror(client, worker, settings):
    process_id = await running_slowly(client, seconds=60)
    workflow_id = workflow_id_for(process_id)
    for name, expected in (("pause", S.PAUSED), ("resume", S.RUNNING), ("pause", S.PAUSED), ("cancel", S.CANCELLED)):
        result = await asyncio.to_thread(temporal_cli, settings, "workflow", "signal", "--workflow-id", workflow_id, "--name", name)
        assert result.returncode == 0, result.stderr
        await eventually(lambda expected=expected: _is(client, process_id, expected), timeout=15)
    # The mirror shows Cancelled once the cancel is accepted; the run closes once the attempt in
    # flight has stopped (at its next heartbeat).
    handle = client.temporal.get_workflow_handle(workflow_id)

    async def closed():
        return (await handle.describe()).status is WorkflowExecutionStatus.CANCELED

    await eventually(closed, timeout=15)


async def test_an_invalid_signal_is_ignored(client, worker, settings):
    process_id = await running_slowly(client, seconds=60)
    try:
        result = await asyncio.to_thread(
            temporal_cli, settings, "workflow", "signal", "--workflow-id", workflow_id_for(process_id), "--name", "resume"
        )
        assert result.returncode == 0, result.stderr
        await asyncio.sleep(0.5)
        assert (await client.get_live_state(process_id)).status_label == "Running"
        assert await status_of(client, process_id) is S.RUNNING
    finally:
        await cleanup(client, process_id)


async def test_a_dispatched_process_paused_before_any_worker_starts_paused(client, worker, settings):
    """Paused while no worker had begun it; a worker that begins it later finds it paused."""
    process, = await client.trigger_event(UnservedEvent(n=1))
    paused = await client.pause_process(process.id)
    assert (paused.status, paused.paused_from) == (S.PAUSED, S.DISPATCHED)
    async with serving(settings, TYPES, task_queue=UnservedEvent.task_queue):
        await asyncio.sleep(1.0)
        assert await status_of(client, process.id) is S.PAUSED
        assert (await client.get_live_state(process.id)).status_label == "Paused"
        resumed = await client.resume_process(process.id)
        assert resumed.status in (S.DISPATCHED, S.RUNNING, S.COMPLETED)
        assert (await client.wait_for_process(process.id, timeout=30)).status is S.COMPLETED


async def test_unknown_process_ids_are_a_typed_error(client):
    from workflowable import ProcessNotFound

    for call in (client.pause_process, client.resume_process, client.cancel_process, client.retry_process, client.get_process):
        with pytest.raises(ProcessNotFound, match="no workflow process has id 987654321"):
            await call(987654321)


async def test_reconcile_reports_a_process_ended_in_the_mirror_whose_run_is_open(client, worker):
    """The last Success write completed the process, then every worker stopped before the run
    closed: reconcile reports it and writes nothing."""
    from workflowable.db.models import processes
    from workflowable.reconcile import STILL_CLOSING

    process_id = await in_state(client, S.DISPATCHED)  # its run is open; no worker serves its queue
    async with client.engine.begin() as conn:
        await conn.execute(processes.update().where(processes.c.id == process_id).values(workflow_process_status_id=S.COMPLETED))
    try:
        for dry_run in (True, False):
            result = await client.reconcile(dry_run=dry_run)
            found = [d for d in result.differences if d.process_id == process_id]
            assert [(d.mirror_status, d.temporal, d.repair) for d in found] == [(S.COMPLETED, "RUNNING", STILL_CLOSING)]
        assert await status_of(client, process_id) is S.COMPLETED
    finally:
        await client.temporal.get_workflow_handle(workflow_id_for(process_id)).terminate("test over")
