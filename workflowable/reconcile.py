"""`reconcile`: compare the mirror with Temporal and repair what differs.

A running workflow writes its own status moves and retries each until Postgres takes it, so
the mirror of a live process converges by itself. What no workflow repairs is found here: a
workflow terminated from the web UI or the CLI, a workflow gone from Temporal, a dispatch whose
mirror write was lost, attempt rows left In Progress by a worker that died with its workflow.

Temporal's `describe` is strongly consistent, so it is the reference. Every repair is a
conditional write (the status reconcile saw, an attempt still In Progress), so a process that
moves meanwhile is left to its workflow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import TerminatedError
from temporalio.service import RPCError, RPCStatusCode

from .db.reconcile import Seen, ended_among, repair, to_compare
from .states import ProcessStatus
from .workflows.messages import PROCESS_WORKFLOW, PROCESS_WORKFLOW_V1, process_id_of, workflow_id_for

#: Describes sent to Temporal at once.
CONCURRENCY = 16

S = ProcessStatus


@dataclass(frozen=True)
class Difference:
    """One process whose mirror disagrees with Temporal, and what reconcile does about it."""

    process_id: int
    mirror_status: ProcessStatus
    temporal: str  #: the workflow's status in Temporal, or "not found"
    repair: str  #: what reconcile writes, in words
    status: ProcessStatus | None = None  #: the status it writes, if any
    run_id: str | None = None  #: with status Dispatched: the run the mirror lost
    error: str | None = None
    abandoned: tuple[int, ...] = ()  #: attempt rows to close as Failure


@dataclass
class ReconcileResult:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    repaired: int = 0  #: differences written (0 on a dry run)
    dry_run: bool = False


async def reconcile(
    engine: AsyncEngine,
    temporal: Client,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReconcileResult:
    """Check every process that is not Completed or Cancelled, or has an attempt In Progress,
    against its Temporal workflow; repair the differences unless `dry_run`.
    `progress(done, total)` is called as describes come back."""
    seen = await to_compare(engine)
    result = ReconcileResult(checked=len(seen), dry_run=dry_run)
    limit = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def check(process: Seen) -> Difference | None:
        nonlocal done
        async with limit:
            difference = await _compare(temporal, process)
        done += 1
        if progress is not None:
            progress(done, len(seen))
        return difference

    found = await asyncio.gather(*(check(process) for process in seen))
    closing = await _ended_but_open(engine, temporal)
    result.checked += len(closing)
    result.differences = sorted([*(d for d in found if d is not None), *closing], key=lambda d: d.process_id)
    if not dry_run:
        for difference in result.differences:
            result.repaired += int(await repair(
                engine, difference.process_id, difference.mirror_status,
                status=difference.status, run_id=difference.run_id, error=difference.error, abandoned=difference.abandoned,
            ))
    return result


#: What reconcile says of a process the mirror shows ended while its Temporal run is still open.
STILL_CLOSING = "none: the mirror shows its end; the run closes once a worker runs its last task (or terminate it)"


async def _ended_but_open(engine: AsyncEngine, temporal: Client) -> list[Difference]:
    """Processes the mirror shows Completed or Cancelled whose workflow is still open: the last
    Success write (or a cancel) has ended the process and every worker stopped before the run
    closed. Nothing to repair (the run closes by itself once a worker is back), only to report.
    Found from Temporal's side (its open process workflows), so that no scan of every finished
    process is needed."""
    query = f'WorkflowType IN ("{PROCESS_WORKFLOW}", "{PROCESS_WORKFLOW_V1}") AND ExecutionStatus = "Running"'
    open_ids = [int(pid) for execution in [e async for e in temporal.list_workflows(query)] if (pid := process_id_of(execution.id)).isdigit()]
    if not open_ids:
        return []
    found = []
    for process_id, status in await ended_among(engine, open_ids):  # visibility lags: only what describe says is still running
        description = await temporal.get_workflow_handle(workflow_id_for(process_id)).describe()
        if description.status is WorkflowExecutionStatus.RUNNING:
            found.append(Difference(process_id, status, "RUNNING", STILL_CLOSING))
    return found


async def _compare(temporal: Client, process: Seen) -> Difference | None:
    handle = temporal.get_workflow_handle(workflow_id_for(process.process_id))
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        if process.never_dispatched or (process.status.is_terminal and not process.open_attempts):
            return None  # not dispatched yet (the sweep's job), or ended and tidy
        abandoned = tuple(a.id for a in process.open_attempts)
        if process.status.is_terminal:
            return Difference(process.process_id, process.status, "not found", _closing(abandoned), abandoned=abandoned)
        missing = f"its Temporal workflow {handle.id} does not exist (never started, deleted, or past the namespace's retention)"
        return Difference(process.process_id, process.status, "not found", "mark Failed", S.FAILED, error=missing, abandoned=abandoned)

    status = description.status
    assert status is not None
    if status is WorkflowExecutionStatus.RUNNING:
        pending = {a.activity_id for a in description.raw_description.pending_activities}
        abandoned = tuple(a.id for a in process.open_attempts if a.run_id != description.run_id or a.activity_id not in pending)
        if process.status in (S.CREATED, S.FAILED):  # the dispatcher started this run but its write was lost
            return Difference(
                process.process_id, process.status, status.name, "mark Dispatched", S.DISPATCHED, run_id=description.run_id, abandoned=abandoned
            )
        if abandoned:
            return Difference(process.process_id, process.status, status.name, _closing(abandoned), abandoned=abandoned)
        return None

    # The workflow has ended: its attempts have too, and the mirror should show how it ended.
    target, error = await _outcome(temporal, handle.id, description.run_id, status)
    abandoned = tuple(a.id for a in process.open_attempts)
    if target is process.status and not abandoned:
        return None
    if target is process.status:
        return Difference(process.process_id, process.status, status.name, _closing(abandoned), abandoned=abandoned)
    repair = f"mark {target.label}" + (f", {_closing(abandoned)}" if abandoned else "")
    return Difference(process.process_id, process.status, status.name, repair, target, error=error, abandoned=abandoned)


async def _outcome(temporal: Client, workflow_id: str, run_id: str, status: WorkflowExecutionStatus) -> tuple[ProcessStatus, str | None]:
    """The status (and error) a closed workflow run leaves its process in."""
    handle = temporal.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        result = await handle.result(follow_runs=False)
    except WorkflowFailureError as err:
        reason = str(err.cause or err)
        if isinstance(err.cause, TerminatedError) or status is WorkflowExecutionStatus.TERMINATED:
            return S.CANCELLED, f"terminated in Temporal: {reason or 'no reason given'}"
        if status is WorkflowExecutionStatus.CANCELED:
            return S.CANCELLED, None
        return S.FAILED, reason
    # The run returns the process's status (Completed, or how the mirror ended it): in a
    # ProcessResult, or, from runs that ended before it existed, as the label alone.
    label = result.get("status") if isinstance(result, dict) else result
    return next((s for s in ProcessStatus if s.label == label and s.is_terminal), S.COMPLETED), None


def _closing(abandoned: tuple[int, ...]) -> str:
    return f"close {len(abandoned)} attempt{'s' if len(abandoned) != 1 else ''} as abandoned"
