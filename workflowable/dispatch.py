"""Dispatch: starting processes' Temporal workflows, one by one or by the `process-runs` sweep.

The workflow id `workflow-process-<id>` makes a second start of a live process a no-op, so a
dispatch can be repeated and sweeps can run side by side. The mirror is marked Dispatched only
for a run this call really started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
)
from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .boundary import TEMPORAL_TRANSIENT
from .db import versions
from .db.mirror import DispatchTarget, Mirror, count_due, fail_dispatch, lock_due, mark_dispatched
from .errors import DispatchFailed, InvalidStateChange, SwapInProgress, TemporalError, TemporalUnavailable
from .states import SWEPT, ProcessStatus, Request
from .workflows.messages import (
    EVENT_ATTRIBUTE,
    PROCESS_ID_ATTRIBUTE,
    PROCESS_RUNS_SCHEDULE,
    PROCESS_RUNS_WORKFLOW,
    PROCESS_WORKFLOW,
    STATUS_ATTRIBUTE,
    WORKFLOW_ATTRIBUTE,
    ProcessInput,
    ProcessPlan,
    workflow_id_for,
)


def temporal_priority(priority: int) -> Priority:
    """Temporal's priority keys run from 1 (first) to 5, with 3 the default; workflow priorities
    are unbounded, higher first. So 1 -> 2, 2 and above -> 1, -1 -> 4, -2 and below -> 5, and 0
    sends no key at all (Temporal's default): a task queue that sees a priority key switches
    to Temporal's priority-aware matching, which cost throughput and latency here
    (docs/performance.md), so processes of default priority leave it as it is."""
    key = min(5, max(1, 3 - priority))
    return Priority.default if key == 3 else Priority(priority_key=key)


async def start_process_workflow(
    temporal: Client, target: DispatchTarget, queue: str | None = None, *, plan: ProcessPlan | None = None, eager: bool = False
) -> str | None:
    """Start the process's workflow; its run id, or None if a run of that id is already live.
    Raises `RefusedForGood` if Temporal refuses it for a reason a later try would not change,
    `TemporalUnavailable` or `TemporalError` (saying who starts it later) if it was not reached.
    `plan`: the process's plan, from a dispatcher that has just created it (see ProcessInput).
    `eager`: if this client's own worker serves the queue and has a free slot, Temporal hands
    it the first workflow task in the start's reply instead of through the task queue (a
    trigger, whose caller waits; the sweep's thousands go through the queue to every worker)."""
    # With its plan, the run is Running from its first workflow task (its first attempt writes
    # the begin to the mirror): the start says so, which saves the workflow an upsert (one
    # history event and one visibility write per process). Until a worker picks the run up, the
    # mirror says Dispatched and the attribute Running. Without a plan, the run's begin decides.
    status = ProcessStatus.RUNNING if plan is not None else ProcessStatus.DISPATCHED
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(PROCESS_ID_ATTRIBUTE, target.process_id),
            SearchAttributePair(STATUS_ATTRIBUTE, status.label),
            SearchAttributePair(WORKFLOW_ATTRIBUTE, target.workflow_name),
            SearchAttributePair(EVENT_ATTRIBUTE, target.event_name),
        ]
    )
    try:
        handle = await temporal.start_workflow(
            PROCESS_WORKFLOW,
            ProcessInput(target.process_id, plan, attributes_set=plan is not None),
            id=workflow_id_for(target.process_id),
            task_queue=queue or target.queue,
            search_attributes=attributes,
            static_summary=f"{target.workflow_name}: process {target.process_id} ({target.event_name})",
            priority=temporal_priority(target.priority),
            request_eager_start=eager,
        )
    except WorkflowAlreadyStartedError:
        return None
    except RPCError as err:
        if err.status is RPCStatusCode.INVALID_ARGUMENT:
            raise RefusedForGood(f"Temporal refused to start its workflow: {err.message}") from None
        later = "the process-runs sweep or dispatch_process starts it later" if target.status in SWEPT else "retry_process tries again"
        error = TemporalUnavailable if err.status in TEMPORAL_TRANSIENT else TemporalError
        raise error(
            f"Temporal did not start the workflow of process {target.process_id} ({err.status.name}: {err.message}); "
            f"it stays {target.status.label}: {later}"
        ) from err
    return handle.first_execution_run_id


class RefusedForGood(Exception):
    """Temporal refused to start a workflow for a reason a later try would not change (its
    payload, say). Not a public error: the dispatchers here mark the process Failed with
    `reason` (and `start_and_record` raises `DispatchFailed`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Record = Callable[[int, str], Awaitable[object]]


async def start_and_record(
    temporal: Client,
    mirror: Mirror,
    target: DispatchTarget,
    queue: str | None = None,
    *,
    plan: ProcessPlan | None = None,
    eager: bool = False,
    record: Record | None = None,
) -> tuple[str | None, object]:
    """The one way a process's workflow is started, one process at a time (the sweep starts
    a locked batch the same way, below): start it, then record the run in the mirror with `record`
    (default: mark it Dispatched, which returns when). Returns the run id (None if a run of that
    id was live already: nothing recorded) and what `record` returned.

    When Temporal does not start it, the outcome is explicit: refused for good (its payload,
    say), the process is marked Failed with the reason and `DispatchFailed` raised; not reached,
    or refused for now, it stays as it was and the error says who starts it later."""
    try:
        run_id = await start_process_workflow(temporal, target, queue, plan=plan, eager=eager)
    except RefusedForGood as refused:
        await mirror.fail_dispatch(target.process_id, target.status, refused.reason)
        raise DispatchFailed(target.process_id, refused.reason) from None
    if run_id is None:
        return None, None
    return run_id, await (record or mirror.mark_dispatched)(target.process_id, run_id)


async def dispatch_one(temporal: Client, mirror: Mirror, process_id: int, queue: str | None = None) -> None:
    """Start the workflow of a Created or Pending process, unless a swap holds it back."""
    target = await mirror.dispatch_target(process_id)
    if target.status not in SWEPT:
        raise InvalidStateChange(process_id, target.status, "dispatch")
    async with mirror.engine.connect() as conn:
        if await versions.is_held(conn, process_id):
            raise SwapInProgress(f"process {process_id}: a swap of workflow {target.workflow_name!r} is running; it dispatches the process when it completes")
    await start_and_record(temporal, mirror, target, queue)


async def retry(temporal: Client, mirror: Mirror, process_id: int) -> None:
    """Run a Failed process again from its last successful activity, as a new run of its workflow id."""
    target = await mirror.dispatch_target(process_id)
    if not Request.RETRY.allowed_from(target.status):
        raise InvalidStateChange(process_id, target.status, Request.RETRY.value)
    run_id, _ = await start_and_record(temporal, mirror, target)
    if run_id is None:
        raise InvalidStateChange(process_id, target.status, "retry (its workflow is still running: run reconcile)")


@dataclass
class SweepResult:
    due: int  #: due processes when the sweep began
    dispatched: int  #: workflows this sweep started
    already_live: int  #: due processes whose workflow was running already
    failed: int = 0  #: processes Temporal refused to start for good, now Failed with the reason


async def process_runs(
    engine: AsyncEngine,
    temporal: Client,
    *,
    batch_size: int = 200,
    concurrency: int = 50,
    progress: Callable[[SweepResult], None] | None = None,
) -> SweepResult:
    """Start a workflow for every due Created or Pending process, highest priority first.

    Each batch is locked (FOR UPDATE SKIP LOCKED) while its workflows start and is marked
    Dispatched in the same transaction, so two sweeps never start the same process twice. A
    process whose start Temporal refuses for good (its payload) is marked Failed, not tried
    again at every sweep; if Temporal cannot be reached, the sweep stops after the batch with
    `TemporalUnavailable` (the Schedule's next sweep, or a retry of its activity, goes on), or
    `TemporalError` if it refused a start for another reason (a permission, a namespace)."""
    async with engine.connect() as conn:
        result = SweepResult(due=await count_due(conn), dispatched=0, already_live=0)
    if progress:
        progress(result)
    already_live: list[int] = []  # due, but their workflow runs: the next batches skip them
    limit = asyncio.Semaphore(concurrency)

    async def start(target: DispatchTarget) -> str | RefusedForGood | TemporalError | None:
        async with limit:
            try:
                return await start_process_workflow(temporal, target)
            except (RefusedForGood, TemporalError) as err:
                return err

    while True:
        async with engine.begin() as conn:
            batch = await lock_due(conn, limit=batch_size, skip=already_live)
            if not batch:
                break
            outcomes = dict(zip((t.process_id for t in batch), await asyncio.gather(*(start(target) for target in batch)), strict=True))
            started = {process_id: run_id for process_id, run_id in outcomes.items() if isinstance(run_id, str)}
            unreached = [err for err in outcomes.values() if isinstance(err, TemporalError)]
            already_live += [process_id for process_id, outcome in outcomes.items() if outcome is None]
            await mark_dispatched(conn, started)
            for process_id, outcome in outcomes.items():
                if isinstance(outcome, RefusedForGood):
                    await fail_dispatch(conn, process_id, outcome.reason)
                    result.failed += 1
            result.dispatched += len(started)
            result.already_live = len(already_live)
        if progress:
            progress(result)
        if unreached:
            error = TemporalUnavailable if all(isinstance(err, TemporalUnavailable) for err in unreached) else TemporalError
            raise error(
                f"the sweep stopped after {len(unreached)} workflows were not started ({unreached[0]}). "
                f"{result.dispatched} were started; the rest stay due for the next sweep"
            )
    return result


def sweep_schedule(task_queue: str, every: timedelta) -> Schedule:
    """A Temporal Schedule that runs the sweep every `every`, never two at once."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PROCESS_RUNS_WORKFLOW,
            id=PROCESS_RUNS_SCHEDULE,
            task_queue=task_queue,
            static_summary="Workflowable process-runs sweep: dispatch due Created and Pending processes",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def install_schedule(temporal: Client, task_queue: str, every: timedelta) -> ScheduleHandle:
    """Create the sweep's Schedule, or update it to these settings if it exists."""
    schedule = sweep_schedule(task_queue, every)
    try:
        return await temporal.create_schedule(PROCESS_RUNS_SCHEDULE, schedule)
    except ScheduleAlreadyRunningError:
        handle = temporal.get_schedule_handle(PROCESS_RUNS_SCHEDULE)
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
        return handle


async def remove_schedule(temporal: Client) -> bool:
    """Delete the sweep's Schedule; False if there was none."""
    try:
        await temporal.get_schedule_handle(PROCESS_RUNS_SCHEDULE).delete()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
