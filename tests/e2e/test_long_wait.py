"""A process that waits: re-checking every second for minutes, with and without a lock key, its
Temporal history stays bounded (it continues as new), and it completes once its condition passes,
with the attempt log and the mirror right across its runs."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from temporalio.client import WorkflowExecutionStatus

from tests.conftest import unique
from workflowable import (
    ActivityContext,
    ActivityType,
    Condition,
    ConditionContext,
    ConditionType,
    ProcessStatus,
    Workflowable,
    WorkflowDefinition,
    WorkflowEvent,
)
from workflowable.states import AttemptStatus
from workflowable.workflows.messages import STATUS_ATTRIBUTE, workflow_id_for

#: How long the processes wait, and how often a run continues as new.
WAIT_SECONDS = 150
CHECKS_PER_RUN = 25
#: The bound: a run's history holds its start and first steps (under 40 events) and then
#: at most this many events per re-check (timer started and fired, a workflow task's three,
#: the check's and the Pending write's markers; measured: 8).
EVENTS_PER_CHECK = 10
BOUND = 40 + CHECKS_PER_RUN * EVENTS_PER_CHECK

ATTEMPT_RUNS = "SELECT temporal_run_id FROM workflow_process_activity_logs WHERE workflow_process_id = :id ORDER BY step, attempt"
APPROVED: set[int] = set()


class Approved(ConditionType):
    async def check(self, ctx: ConditionContext) -> bool:
        return ctx.process_id in APPROVED


class Step(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output(f"{ctx.activity_name}_done", "yes")


class ApprovalAsked(WorkflowEvent):
    n: int


class LockedApprovalAsked(WorkflowEvent):
    n: int

    def workflow_process_lock_key(self) -> str | None:
        return f"long-wait-{self.n}"


async def runs_of(client, process_id: int) -> list[tuple[str, int, WorkflowExecutionStatus]]:
    """(run id, history length, status) of every run of the process's workflow, oldest first."""
    runs = []
    async for execution in client.temporal.list_workflows(f'WorkflowId = "{workflow_id_for(process_id)}"'):
        handle = client.temporal.get_workflow_handle(execution.id, run_id=execution.run_id)
        description = await handle.describe()
        runs.append((execution.start_time, execution.run_id, description.raw_description.workflow_execution_info.history_length, description.status))
    return [(run_id, length, status) for _, run_id, length, status in sorted(runs)]


async def test_a_process_waits_for_minutes_with_a_bounded_history(client, settings, run_worker, task_queue):
    ApprovalAsked.task_queue = LockedApprovalAsked.task_queue = task_queue
    flows = []
    for event in (ApprovalAsked, LockedApprovalAsked):
        flow = WorkflowDefinition(unique("long-wait"), event=event, retry_interval=1)
        ask, ship = flow.activity("ask", Step), flow.activity("ship", Step)
        flow.start(ask)
        flow.transition(ask, ship, when=[Condition(Approved)])
        await client.save_workflow(flow, activate=True)
        flows.append(flow)
    waiting = Workflowable(settings.model_copy(update={"checks_per_run": CHECKS_PER_RUN}), client.database, client.temporal)
    async with run_worker([Step, Approved], task_queue=task_queue, checks_per_run=CHECKS_PER_RUN):
        plain, = await waiting.trigger_event(ApprovalAsked(n=1))
        locked, = await waiting.trigger_event(LockedApprovalAsked(n=1))
        processes = (plain.id, locked.id)
        await asyncio.sleep(WAIT_SECONDS)
        for process_id in processes:
            assert (await client.get_process(process_id)).status is ProcessStatus.PENDING
            live = await client.get_live_state(process_id)
            assert live is not None and live.status_label == "Pending"
        APPROVED.update(processes)
        for process_id in processes:
            await client.wake_process(process_id)
        done = [await client.wait_for_process(process_id, timeout=60) for process_id in processes]
    for process, process_id in zip(done, processes, strict=True):
        assert process.status is ProcessStatus.COMPLETED
        assert [(a.activity_name, a.status) for a in process.attempts] == [("ask", AttemptStatus.SUCCESS), ("ship", AttemptStatus.SUCCESS)]
        assert process.token_values["ship_done"] == "yes"
        runs = await runs_of(client, process_id)
        lengths = [length for _, length, _ in runs]
        print(f"process {process_id}: {len(runs)} runs in {WAIT_SECONDS} s, history lengths {lengths} (bound {BOUND})")
        assert len(runs) >= WAIT_SECONDS // (CHECKS_PER_RUN + 5), f"continued as new too rarely: {lengths}"
        assert max(lengths) <= BOUND, lengths
        assert [status for _, _, status in runs] == [WorkflowExecutionStatus.CONTINUED_AS_NEW] * (len(runs) - 1) + [WorkflowExecutionStatus.COMPLETED]
        # The attempt log and the mirror know which run did what.
        first_run, last_run = runs[0][0], runs[-1][0]
        async with client.engine.connect() as conn:
            attempt_runs = (await conn.execute(sa.text(ATTEMPT_RUNS), {"id": process_id})).scalars().all()
            process_run = await conn.scalar(sa.text("SELECT temporal_run_id FROM workflow_processes WHERE id = :id"), {"id": process_id})
        assert attempt_runs == [first_run, last_run]
        assert process_run == last_run
        description = await client.temporal.get_workflow_handle(workflow_id_for(process_id)).describe()
        assert description.typed_search_attributes.get(STATUS_ATTRIBUTE) == "Completed"
    for flow in flows:
        await client.deactivate_workflow(flow.name)
