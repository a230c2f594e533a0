"""Pause, resume and cancel: how a request reaches a process, wherever it stands (and a wake, a
wait for its end, and the live workflow's own view of its process).

Checked against the mirror first (one row: `Mirror.head`). While no worker has begun the
process's workflow, the request is applied in the mirror, and a workflow that exists is told by
a durable signal (or Temporal's cancel). Once it has begun, the request goes to the live
workflow as an update: the workflow checks it against its own state (refusing it with
`InvalidRequest`), applies it, and answers once the mirror shows it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from .db.mirror import Mirror, ProcessHead
from .errors import InvalidStateChange, ProcessKeptChanging, ProcessNotFound, RequestTimeout, WaitTimeout, WorkflowableError
from .states import ProcessStatus, Request
from .workflows.messages import ProcessState, Signals, workflow_id_for
from .workflows.process import InvalidRequest

#: Answers that mean "send it again": the server holds too many updates for the workflow (it
#: admits about ten at a time), or it aborted them while the workflow's task was redone.
RESEND = frozenset({RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.ABORTED, RPCStatusCode.UNAVAILABLE})


async def apply_request(temporal: Client, mirror: Mirror, process_id: int, request: Request, timeout: float) -> None:
    """Apply `request` where the process is; returns once the mirror shows it."""
    for _ in range(3):  # the process may move between the look and the write
        process = await mirror.head(process_id)
        if not request.allowed_from(process.status):
            raise InvalidStateChange(process_id, process.status, request.value)
        if _not_begun(process):
            if await mirror.apply_before_run(process, request):
                if ProcessStatus.DISPATCHED in (process.status, process.paused_from):
                    await _tell_workflow(temporal, process_id, request)
                return
            continue
        handle = await live_handle(temporal, process_id)
        if handle is None:  # its workflow ended outside Workflowable (terminated, say)
            resume_to = ProcessStatus.CREATED if process.first_run_at is None else ProcessStatus.PENDING
            if await mirror.apply_before_run(process, request, resume_to=resume_to):
                return
            continue
        await _update(handle, mirror, process, request, timeout)
        return
    raise ProcessKeptChanging(process_id, request.value)


async def live_handle(temporal: Client, process_id: int) -> WorkflowHandle[Any, Any] | None:
    """The handle of the process's running workflow; None if it has none running."""
    handle = temporal.get_workflow_handle(workflow_id_for(process_id))
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return handle if description.status is WorkflowExecutionStatus.RUNNING else None


async def wake(temporal: Client, mirror: Mirror, process_id: int) -> None:
    """Tell the process's live workflow to check its transitions now."""
    handle = await live_handle(temporal, process_id)
    if handle is not None:
        try:
            await handle.signal(Signals.WAKE)
            return
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
    # No live workflow, or it ended between the look and the signal.
    raise InvalidStateChange(process_id, (await mirror.head(process_id)).status, "wake")


async def live_state(temporal: Client, mirror: Mirror, process_id: int, timeout: float) -> ProcessState | None:
    """The live workflow's `state` query; None without one; `RequestTimeout` if no worker answers."""
    handle = await live_handle(temporal, process_id)
    if handle is None:
        return None
    try:
        return await handle.query(Signals.STATE, result_type=ProcessState, rpc_timeout=timedelta(seconds=timeout))
    except RPCError as err:
        if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise
        raise RequestTimeout(process_id, "a state query", timeout, (await mirror.head(process_id)).queue) from None


def _not_begun(process: ProcessHead) -> bool:
    """No worker has begun the process's workflow: it is Created or Dispatched, or paused from there."""
    waiting = (ProcessStatus.CREATED, ProcessStatus.DISPATCHED)
    return process.status in waiting or (process.status is ProcessStatus.PAUSED and process.paused_from in waiting)


async def _tell_workflow(temporal: Client, process_id: int, request: Request) -> None:
    handle = temporal.get_workflow_handle(workflow_id_for(process_id))
    try:
        if request is Request.CANCEL:
            await handle.cancel()
        else:
            await handle.signal(request.value)
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise


async def _update(handle: WorkflowHandle[Any, Any], mirror: Mirror, process: ProcessHead, request: Request, timeout: float) -> None:
    try:
        await asyncio.wait_for(_update_when_admitted(handle, request), timeout)
    except WorkflowUpdateFailedError as err:
        refused_at = InvalidRequest.status_in(err.cause)
        if refused_at is not None:
            raise InvalidStateChange(process.id, refused_at, request.value) from None
        raise
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise RequestTimeout(process.id, request.value, timeout, process.queue) from None
    except RPCError as err:
        if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise RequestTimeout(process.id, request.value, timeout, process.queue) from None
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        # The workflow ended between the check and the request (Temporal gives no answer to
        # an update it had not handed the workflow yet). A cancel has its effect either way.
        status = (await mirror.head(process.id)).status
        if request is Request.CANCEL and status is ProcessStatus.CANCELLED:
            return
        raise InvalidStateChange(process.id, status, request.value) from None


async def _update_when_admitted(handle: WorkflowHandle[Any, Any], request: Request) -> None:
    """Send the update until the server takes it. It keeps one id, so a resend of an update the
    workflow already applied returns that outcome instead of applying it twice. The caller
    bounds the whole by its timeout."""
    update_id = f"{request.value}-{uuid.uuid4()}"
    pause = 0.05
    while True:
        try:
            await handle.execute_update(request.value, id=update_id, result_type=str)
            return
        except RPCError as err:
            if err.status not in RESEND:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)


@dataclass
class BulkResult:
    """What a request to many processes did, process by process."""

    total: int
    done: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  #: not valid in its status, or not found
    failed: dict[int, str] = field(default_factory=dict)  #: any other error (unavailable, timed out)

    @property
    def finished(self) -> int:
        return len(self.done) + len(self.refused) + len(self.failed)


async def apply_to_each(
    process_ids: list[int],
    one: Callable[[int], Awaitable[object]],
    *,
    concurrency: int,
    progress: Callable[[BulkResult], None] | None,
) -> BulkResult:
    """`one(id)` for each id, `concurrency` at a time, every outcome sorted into the result."""
    result = BulkResult(total=len(process_ids))
    slots = asyncio.Semaphore(max(1, concurrency))

    async def each(process_id: int) -> None:
        async with slots:
            try:
                await one(process_id)
                result.done.append(process_id)
            except (InvalidStateChange, ProcessNotFound) as exc:
                result.refused[process_id] = str(exc)
            except WorkflowableError as exc:
                result.failed[process_id] = str(exc)
        if progress is not None:
            progress(result)

    await asyncio.gather(*(each(process_id) for process_id in process_ids))
    result.done.sort()
    return result


async def wait_until_ended(temporal: Client, mirror: Mirror, process_id: int, timeout: float) -> None:
    """Until the process's workflow ends (`WaitTimeout` after `timeout` seconds); at once if the
    process ended through the mirror before a workflow began."""
    await mirror.head(process_id)  # an unknown id is a ProcessNotFound, not a Temporal error
    try:
        await asyncio.wait_for(_until_closed(temporal, workflow_id_for(process_id)), timeout)
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        # No workflow: ended through the mirror before one began (a result), or not started yet.
        status = (await mirror.head(process_id)).status
        if not status.is_terminal:
            raise InvalidStateChange(process_id, status, "wait for (it has no workflow yet)") from None
    except TimeoutError:
        status = (await mirror.head(process_id)).status
        raise WaitTimeout(f"process {process_id} did not end within {timeout} s; it is {status.label}") from None


async def _until_closed(temporal: Client, workflow_id: str) -> None:
    """Until the workflow's run closes, following runs that continue as new. Its result is not
    read: the mirror says how the process ended, and a result that a worker encrypted with
    another payload key would not decode here."""
    while True:
        handle = temporal.get_workflow_handle(workflow_id)  # its latest run
        closes = handle.fetch_history_events(wait_new_event=True, event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT)
        async for event in closes:
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                return
            break  # the next run carries on
