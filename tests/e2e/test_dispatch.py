"""Dispatch and waiting: deferred and scheduled processes, the process-runs sweep (twice at
once, in priority order), its Temporal Schedule, retrying failed processes, wake-ups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from tests.conftest import eventually, serving, unique
from tests.e2e.flows import FLAKY_FAILS, GATE, TYPES, WAIT_UNTIL, AskToWait, Flaky, GateOpen, Sleep
from tests.e2e.test_cli import WORKFLOWABLE, environment
from workflowable import Condition, ProcessStatus, WorkflowDefinition, WorkflowEvent
from workflowable.states import AttemptStatus
from workflowable.workflows.messages import PROCESS_RUNS_SCHEDULE, workflow_id_for

S = ProcessStatus


class DeferredEvent(WorkflowEvent):
    n: int


class SweptEvent(WorkflowEvent):
    n: int


class RetryEvent(WorkflowEvent):
    n: int


class WakeEvent(WorkflowEvent):
    n: int


async def has_workflow(client, process_id: int) -> bool:
    try:
        await client.temporal.get_workflow_handle(workflow_id_for(process_id)).describe()
    except RPCError:
        return False
    return True


async def test_deferred_and_scheduled_processes_wait_for_the_sweep(client, run_worker, task_queue):
    DeferredEvent.task_queue = task_queue
    flow = WorkflowDefinition(unique("deferred"), event=DeferredEvent)
    flow.start(flow.activity("only", Sleep))
    await client.save_workflow(flow, activate=True)
    async with run_worker(TYPES, task_queue=task_queue):
        deferred, = await client.trigger_event(DeferredEvent(n=1), dispatch=False)
        later, = await client.trigger_event(DeferredEvent(n=2), run_at=datetime.now(UTC) + timedelta(seconds=3))
        assert (deferred.status, later.status) == (S.CREATED, S.CREATED)
        assert not await has_workflow(client, deferred.id) and not await has_workflow(client, later.id)

        await client.process_runs()
        assert (await client.wait_for_process(deferred.id)).status is S.COMPLETED
        assert (await client.get_process(later.id)).status is S.CREATED  # not due yet
        await asyncio.sleep(max(0.0, (later.next_run_at - datetime.now(UTC)).total_seconds()) + 0.1)
        await client.process_runs()
        done = await client.wait_for_process(later.id)
    assert done.status is S.COMPLETED and done.dispatched_at >= later.next_run_at
    await client.deactivate_workflow(flow.name)


async def sweep_flows(client, queue: str) -> tuple[WorkflowDefinition, WorkflowDefinition]:
    SweptEvent.task_queue = queue  # no worker serves it: dispatched processes stay Dispatched
    flows = []
    for name, priority in (("urgent", 5), ("routine", 0)):
        flow = WorkflowDefinition(unique(name), event=SweptEvent, priority=priority)
        flow.start(flow.activity("only", Sleep))
        await client.save_workflow(flow, activate=True)
        flows.append(flow)
    return flows[0], flows[1]


async def own_processes(client, events: int) -> tuple[list[int], list[int]]:
    """Trigger `events` SweptEvents without dispatch; (urgent ids, routine ids)."""
    urgent, routine = [], []
    for n in range(events):
        created = await client.trigger_event(SweptEvent(n=n), dispatch=False)
        by_priority = sorted(created, key=lambda p: p.workflow_name.startswith("routine"))
        urgent.append(by_priority[0].id)
        routine.append(by_priority[1].id)
    return urgent, routine


async def terminate_all(client, ids: list[int]) -> None:
    async def terminate(process_id: int) -> None:
        try:
            await client.temporal.get_workflow_handle(workflow_id_for(process_id)).terminate("test cleanup")
        except RPCError:
            pass

    for chunk in range(0, len(ids), 100):
        await asyncio.gather(*(terminate(i) for i in ids[chunk : chunk + 100]))


async def test_two_sweeps_at_once_dispatch_each_process_exactly_once(client, task_queue):
    urgent_flow, routine_flow = await sweep_flows(client, task_queue)
    urgent, routine = await own_processes(client, 500)
    ids = urgent + routine
    try:
        first, second = await asyncio.gather(client.process_runs(batch_size=100), client.process_runs(batch_size=100))
        assert first.dispatched + second.dispatched >= 1000
        async with client.engine.connect() as conn:
            import sqlalchemy as sa

            rows = (await conn.execute(sa.text(
                "SELECT workflow_process_status_id, temporal_run_id IS NOT NULL FROM workflow_processes WHERE id = ANY(:ids)"
            ), {"ids": ids})).all()
        assert rows == [(int(S.DISPATCHED), True)] * 1000
        started = await eventually(
            lambda: _count_if(client, f'TaskQueue = "{task_queue}"', 1000), timeout=30
        )
        assert started == 1000  # one workflow run per process: no second start
    finally:
        await terminate_all(client, ids)
        for flow in (urgent_flow, routine_flow):
            await client.deactivate_workflow(flow.name)


async def _count_if(client, query: str, expected: int) -> int | None:
    count = (await client.temporal.count_workflows(query)).count
    return count if count >= expected else None


async def test_one_sweep_dispatches_higher_priority_first(client, task_queue):
    urgent_flow, routine_flow = await sweep_flows(client, task_queue)
    urgent, routine = await own_processes(client, 60)
    try:
        await client.process_runs(batch_size=20)
        urgent_at = [(await client.get_process(i)).dispatched_at for i in urgent]
        routine_at = [(await client.get_process(i)).dispatched_at for i in routine]
        assert max(urgent_at) <= min(routine_at)
        described = await client.temporal.get_workflow_handle(workflow_id_for(urgent[0])).describe()
        assert described.raw_description.workflow_execution_info.priority.priority_key == 1  # priority 5 -> key 1
    finally:
        await terminate_all(client, urgent + routine)
        for flow in (urgent_flow, routine_flow):
            await client.deactivate_workflow(flow.name)


async def test_retry_continues_from_the_last_successful_activity(client, run_worker, task_queue):
    RetryEvent.task_queue = task_queue
    FLAKY_FAILS["on"] = True
    flow = WorkflowDefinition(unique("retry"), event=RetryEvent, max_attempts=2, retry_backoff=0.1)
    first, second = flow.activity("first", Sleep), flow.activity("second", Flaky)
    flow.start(first)
    flow.transition(first, second)
    await client.save_workflow(flow, activate=True)
    async with run_worker(TYPES, task_queue=task_queue):
        process, = await client.trigger_event(RetryEvent(n=1))
        failed = await client.wait_for_process(process.id)
        assert failed.status is S.FAILED and "flaky is down" in failed.error and failed.position_name == "first"
        FLAKY_FAILS["on"] = False
        retried = await client.retry_process(process.id)
        assert retried.status in (S.DISPATCHED, S.RUNNING, S.COMPLETED) and retried.error is None
        done = await client.wait_for_process(process.id)
    assert done.status is S.COMPLETED
    assert [(a.activity_name, a.status, a.attempt) for a in done.attempts] == [
        ("first", AttemptStatus.SUCCESS, 1),
        ("second", AttemptStatus.FAILURE, 1),
        ("second", AttemptStatus.FAILURE, 2),
        ("second", AttemptStatus.SUCCESS, 1),
    ]
    first_run, new_run = {a.step for a in done.attempts[:3]}, done.attempts[3].step
    assert new_run > max(first_run)
    description = await client.temporal.get_workflow_handle(workflow_id_for(process.id)).describe()
    assert description.status is WorkflowExecutionStatus.COMPLETED
    await client.deactivate_workflow(flow.name)


async def test_a_wake_up_checks_the_transitions_at_once(client, run_worker, task_queue):
    WakeEvent.task_queue = task_queue
    GATE["open"] = False
    WAIT_UNTIL.clear()
    flow = WorkflowDefinition(unique("wake"), event=WakeEvent, retry_interval=3600)
    first, second = flow.activity("first", AskToWait), flow.activity("second", Sleep)
    flow.start(first)
    flow.transition(first, second, when=[Condition(GateOpen)])
    await client.save_workflow(flow, activate=True)
    async with run_worker(TYPES, task_queue=task_queue):
        process, = await client.trigger_event(WakeEvent(n=1))
        pending = await eventually(lambda: _pending(client, process.id))
        assert timedelta(minutes=59) < pending.next_run_at - pending.attempts[0].completed_at < timedelta(minutes=61)
        live = await client.get_live_state(process.id)
        assert live.status_label == "Pending" and live.next_run_at == pending.next_run_at
        GATE["open"] = True
        await client.wake_process(process.id)
        done = await client.wait_for_process(process.id, timeout=15)
    assert done.status is S.COMPLETED
    await client.deactivate_workflow(flow.name)


async def _pending(client, process_id: int):
    process = await client.get_process(process_id)
    return process if process.status is S.PENDING else None


async def test_an_activity_can_ask_for_a_later_check(client, run_worker, task_queue):
    WakeEvent.task_queue = task_queue
    GATE["open"] = False
    WAIT_UNTIL["at"] = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
    flow = WorkflowDefinition(unique("ask"), event=WakeEvent, retry_interval=1)
    first, second = flow.activity("first", AskToWait), flow.activity("second", Sleep)
    flow.start(first)
    flow.transition(first, second, when=[Condition(GateOpen)])
    await client.save_workflow(flow, activate=True)
    try:
        async with run_worker(TYPES, task_queue=task_queue):
            process, = await client.trigger_event(WakeEvent(n=1))
            pending = await eventually(lambda: _pending(client, process.id))
            assert pending.next_run_at == WAIT_UNTIL["at"]
            await client.cancel_process(process.id)
    finally:
        WAIT_UNTIL.clear()
        await client.deactivate_workflow(flow.name)


async def run_cli(settings, *args: str):
    process = await asyncio.create_subprocess_exec(
        *WORKFLOWABLE, *args, env=environment(settings), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, output.decode()


async def test_the_cli_steers_processes_and_installs_the_schedule(client, settings):
    DeferredEvent.task_queue = settings.task_queue
    flow = WorkflowDefinition(unique("cli-sweep"), event=DeferredEvent)
    flow.start(flow.activity("only", Sleep))
    await client.save_workflow(flow, activate=True)
    try:
        async with serving(settings, TYPES, task_queue=settings.task_queue):
            paused, = await client.trigger_event(DeferredEvent(n=1), dispatch=False)
            code, output = await run_cli(settings, "process", "pause", str(paused.id))
            assert code == 0 and f"Process {paused.id} is Paused" in output, output
            code, output = await run_cli(settings, "process", "pause", str(paused.id))
            assert code == 5 and f"process {paused.id} is Paused: cannot pause it" in output, output  # 5: not valid in its status
            code, output = await run_cli(settings, "process", "resume", str(paused.id))
            assert code == 0 and "is Created" in output, output

            code, output = await run_cli(settings, "schedule", "install", "--every", "3600")
            assert code == 0 and PROCESS_RUNS_SCHEDULE in output, output
            await client.temporal.get_schedule_handle(PROCESS_RUNS_SCHEDULE).trigger()
            done = await eventually(lambda: _completed(client, paused.id), timeout=30)  # the Schedule's sweep ran it
            assert done.status is S.COMPLETED

            later, = await client.trigger_event(DeferredEvent(n=2), dispatch=False)
            code, output = await run_cli(settings, "process-runs")
            assert code == 0 and "dispatched of" in output, output
            assert (await client.wait_for_process(later.id, timeout=30)).status is S.COMPLETED
    finally:
        code, output = await run_cli(settings, "schedule", "remove")
        assert code == 0 and "removed" in output, output
        await client.deactivate_workflow(flow.name)


async def _completed(client, process_id: int):
    process = await client.get_process(process_id)
    return process if process.status is S.COMPLETED else None
