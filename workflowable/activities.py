"""The worker's side of a process: activity types run as Temporal activities, and the local
activities through which the workflow reads its plan, checks conditions and moves its status.

Every attempt of an activity writes its own row: In Progress once it runs (before it starts, or
for a step's first attempt at its first heartbeat, a second in), then Success (with its output
tokens and the new position, atomically) or Failure with the error, a cancellation included.
While a handler runs, the attempt heartbeats every second, so that a cancel reaches it within
seconds and a dead worker's attempt is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from . import tracing
from .db import versions
from .db.database import is_transient
from .db.mirror import AttemptKey, Mirror
from .definitions import (
    ActivityContext,
    ActivityType,
    Catalog,
    check_token_key,
    check_token_sizes,
    encode_token_value,
)
from .dispatch import SweepResult, process_runs, start_and_record
from .errors import InvalidParameters, InvalidToken, NonRetryable, ProcessNotFound, UnknownType
from .evaluation import Evaluation, describe_error, evaluate
from .metrics import WorkerMetrics
from .settings import DEFAULT_MAX_PROCESS_TOKENS_BYTES, DEFAULT_MAX_TOKEN_BYTES
from .states import ProcessStatus
from .workflows.locks import LOCK_WORKFLOW, LockInput, LockRequest, lock_workflow_id
from .workflows.messages import (
    Activities,
    ActivityInput,
    ActivityOutput,
    AttemptClose,
    ChooseInput,
    ChooseOutput,
    Delivery,
    DeliveryRecord,
    ProcessInput,
    ProcessPlan,
    Signals,
    StatusChange,
    StatusWrite,
    workflow_id_for,
)
from .workflows.swaps import SWAP_SIGNAL, SwapMove, SwapProgress, SwapStep

HEARTBEAT_EVERY = 1.0  # seconds
#: Backoff of a mirror write that Postgres did not take (seconds): doubling up to the maximum,
#: which stays under the heartbeat timeout because the retry loop heartbeats between tries.
WRITE_RETRY_FIRST, WRITE_RETRY_MAX = 0.2, 5.0

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _run_id() -> str:
    """The Temporal run of the workflow this activity belongs to (every activity here has one)."""
    run_id = activity.info().workflow_run_id
    assert run_id is not None
    return run_id


async def _heartbeating(work: Awaitable[T], *, first_beat: Callable[[], Awaitable[object]] | None = None) -> T:
    """Run `work`, heartbeating meanwhile (after `first_beat`, once, if it runs that long); a
    cancel of this activity cancels `work` too."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY)
            if not done:
                if first_beat is not None:
                    opening, first_beat = first_beat, None
                    await opening()
                activity.heartbeat()
        return task.result()
    except asyncio.CancelledError:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise


class ProcessActivities:
    """The activities one worker registers, bound to its mirror and its catalog of types."""

    def __init__(
        self,
        mirror: Mirror,
        catalog: Catalog,
        *,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        max_process_tokens_bytes: int = DEFAULT_MAX_PROCESS_TOKENS_BYTES,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.mirror = mirror
        self.catalog = catalog
        self.max_token_bytes = max_token_bytes
        self.max_process_tokens_bytes = max_process_tokens_bytes
        self.metrics = metrics

    @activity.defn(name=Activities.BEGIN_PROCESS)
    async def begin_process(self, input: ProcessInput) -> ProcessPlan:
        """Mark the process Running (unless it was paused or ended meanwhile) and return its plan."""
        with _not_found_is_final():
            return await self.mirror.begin_process(input.process_id, _run_id())

    @activity.defn(name=Activities.WRITE_STATUS)
    async def write_status(self, change: StatusWrite) -> int:
        """Apply the workflow's status move if the transition table allows it; the status the mirror shows now."""
        return int(await self.mirror.write_status(change))

    @activity.defn(name=Activities.SET_STATUS)
    async def set_status(self, change: StatusChange) -> bool:
        return await self.mirror.set_status(change)

    @activity.defn(name=Activities.CLOSE_ATTEMPT)
    async def close_attempt(self, close: AttemptClose) -> None:
        """Close an attempt whose worker could not (it died or hung) as Failure, if still open."""
        key = AttemptKey(close.process_id, close.activity_id, close.run_id, close.step, close.attempt)
        await self.mirror.abandon_attempt(key, _now(), close.error)

    @activity.defn(name=Activities.REQUEST_CANCEL)
    async def request_cancel(self, workflow_id: str) -> None:
        """Ask Temporal to cancel the workflow (a workflow cannot cancel itself)."""
        await activity.client().get_workflow_handle(workflow_id).cancel()

    @activity.defn(name=Activities.REQUEST_LOCK)
    async def request_lock(self, request: LockRequest) -> None:
        """Join the queue of a lock key, starting its lock workflow if it is not running."""
        await activity.client().start_workflow(
            LOCK_WORKFLOW,
            LockInput(request.key, request.lease_seconds),
            id=lock_workflow_id(request.key),
            task_queue=request.task_queue,
            start_signal=Signals.ACQUIRE,
            start_signal_args=[request.requester],
            static_summary=f"Lock key {request.key!r}",
        )

    @activity.defn(name=Activities.PROCESS_RUNS)
    async def process_runs(self) -> str:
        """The `process-runs` sweep, run by the Temporal Schedule `workflowable schedule install` makes."""

        def beat(result: SweepResult) -> None:
            activity.heartbeat(result.dispatched)

        result = await process_runs(self.mirror.engine, activity.client(), progress=beat)
        return f"{result.dispatched} dispatched of {result.due} due, {result.already_live} already running"

    @activity.defn(name=Activities.SWAP_BEGIN)
    async def swap_begin(self, swap_id: int) -> None:
        await versions.begin_swap(self.mirror.engine, swap_id)

    @activity.defn(name=Activities.SWAP_STEP)
    async def swap_step(self, step: SwapStep) -> SwapProgress:
        """Move the old workflow's live processes that have no running workflow; tell the others
        to move at their next boundary. Returns how many are left on the old workflow."""
        engine, temporal = self.mirror.engine, activity.client()
        signalled = set(step.signalled)
        for process in await versions.live_processes(engine, step.swap_id):
            activity.heartbeat(process.id)
            if process.id in signalled:
                continue
            handle = temporal.get_workflow_handle(workflow_id_for(process.id))
            running = False
            if process.run_id is not None:
                try:
                    running = (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
                except RPCError as err:
                    if err.status is not RPCStatusCode.NOT_FOUND:
                        raise
            if running:
                await handle.signal(SWAP_SIGNAL, step.swap_id)
                signalled.add(process.id)
            else:  # never dispatched, or its workflow is gone: moved here (None if it moved meanwhile)
                await versions.move_process(engine, step.swap_id, process.id, run_id=process.run_id)
        remaining = len(await versions.live_processes(engine, step.swap_id))
        return SwapProgress(remaining, sorted(signalled))

    @activity.defn(name=Activities.SWAP_FINISH)
    async def swap_finish(self, swap_id: int) -> str:
        """Complete the swap and dispatch the processes it held back."""
        held = await versions.finish_swap(self.mirror.engine, swap_id)
        started_paused = functools.partial(versions.mark_started_paused, self.mirror.engine)
        for process_id in held.created:
            await start_and_record(activity.client(), self.mirror, await self.mirror.dispatch_target(process_id))
        for process_id in held.paused:  # their workflows wait, paused, for a resume
            await start_and_record(activity.client(), self.mirror, await self.mirror.dispatch_target(process_id), record=started_paused)
        return f"swap {swap_id} completed; {len(held.created)} held-back processes dispatched, {len(held.paused)} started paused"

    @activity.defn(name=Activities.SWAP_PROCESS)
    async def swap_process(self, move: SwapMove) -> int | None:
        """A process workflow moves itself onto the swap's new workflow (None: it was not moved)."""
        return await versions.move_process(self.mirror.engine, move.swap_id, move.process_id, run_id=move.run_id)

    @activity.defn(name=Activities.RECORD_DELIVERY)
    async def record_delivery(self, record: DeliveryRecord) -> Delivery | None:
        """Record a delivery signalled by hand (None: the process has ended). An unknown event or
        a field that cannot be a token is refused for good: the workflow ignores the signal."""
        try:
            if not isinstance(record.tokens, dict):
                raise InvalidToken(f"a delivery's tokens are a JSON object, got {type(record.tokens).__name__}")
            fields = {check_token_key(key): encode_token_value(value, key=key) for key, value in record.tokens.items()}
            check_token_sizes(fields, self.max_token_bytes, total_limit=self.max_process_tokens_bytes)
            return await self.mirror.record_delivery(record.process_id, record.event, fields, record.signal_id)
        except (InvalidToken, UnknownType) as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from None

    @activity.defn(name=Activities.CHOOSE_TRANSITION)
    async def choose_transition(self, input: ChooseInput) -> ChooseOutput | int | None:
        """The first transition whose deadline has come and whose conditions all pass (checked in
        order, stopping at a false), with the tokens of every delivery the mirror has: those the
        workflow has not heard of are read (a lost signal delays a delivery, never loses it).
        For the first workflow type (`with_deliveries` unset), the transition's id alone."""
        if not input.with_deliveries:
            return _chosen_or_raise(await evaluate(self.catalog, input.process_id, input.transitions, input.tokens))
        missed = await self.mirror.deliveries_after(input.process_id, input.deliveries)
        tokens = dict(input.tokens)
        for delivery in missed:
            tokens.update(delivery.tokens)
        evaluation = await evaluate(self.catalog, input.process_id, input.transitions, tokens, waited_seconds=input.waited_seconds)
        position = input.transitions[0].from_activity_id if input.transitions else None
        await self.mirror.record_evaluation(input.process_id, position, input.cause or "checked", evaluation.chosen, evaluation.details())
        return ChooseOutput(_chosen_or_raise(evaluation), missed)

    def activity_for(self, activity_type: type[ActivityType[Any]]) -> Callable[[ActivityInput], Coroutine[Any, Any, ActivityOutput]]:
        """The Temporal activity, named after the type, that runs and logs one attempt."""
        mirror, catalog, metrics, type_name = self.mirror, self.catalog, self.metrics, activity_type.type_name()
        max_token_bytes, max_process_tokens_bytes = self.max_token_bytes, self.max_process_tokens_bytes
        written = functools.partial(_until_written, metrics=metrics)

        async def run(input: ActivityInput) -> ActivityOutput:
            """One attempt, counted and timed by its outcome."""
            started, outcome = time.monotonic(), "failure"
            try:
                output = await attempt(input)
                outcome = "success" if output.not_begun is None else "not_begun"
                return output
            except asyncio.CancelledError:
                outcome = "cancelled"
                raise
            finally:
                if metrics is not None:
                    metrics.attempt(type_name, outcome, time.monotonic() - started)

        async def attempt(input: ActivityInput) -> ActivityOutput:
            tracing.annotate(**{tracing.PROCESS_ID: input.process_id, tracing.WORKFLOW: input.workflow_name, tracing.ACTIVITY: input.activity_name})
            key = AttemptKey(input.process_id, input.activity_id, _run_id(), input.step, input.attempt)
            started_at = _now()
            # The attempt's In Progress row goes with a write that must come before it runs: the
            # run's begin, or for a retry the check that no earlier attempt of the step succeeded
            # (its worker died before Temporal heard). A step's first attempt needs neither: its
            # row is opened at its first heartbeat, and one that ends sooner is written once, as it ends.
            open_row: Callable[[], Awaitable[object]] | None = None  # at the first heartbeat
            if input.begins_run:
                began, earlier = await written("begin", lambda: _begin_and_start(mirror, key, started_at))
                if began is not ProcessStatus.RUNNING:  # paused or ended through the mirror meanwhile
                    return ActivityOutput(outputs={}, not_begun=int(began))
            elif input.attempt > 1:
                earlier = await written("start", lambda: mirror.start_attempt(key, started_at))
            else:
                earlier, open_row = None, functools.partial(written, "start", lambda: mirror.start_attempt(key, started_at))
            if earlier is not None:  # an earlier attempt of this step succeeded; its worker died
                return ActivityOutput(outputs=earlier)
            try:
                ctx = ActivityContext(
                    process_id=input.process_id,
                    activity_id=input.activity_id,
                    activity_name=input.activity_name,
                    attempt=input.attempt,
                    tokens=dict(input.tokens),
                    parameters=_parameters(activity_type, input.parameters),
                    max_token_bytes=max_token_bytes,
                    max_process_tokens_bytes=max_process_tokens_bytes,
                )
                await _heartbeating(activity_type().handle(ctx), first_beat=open_row)
            except asyncio.CancelledError:
                await written("fail", lambda: mirror.fail_attempt(key, started_at, _now(), _cancel_reason()))
                raise
            except (NonRetryable, InvalidToken) as exc:  # another attempt would fail the same way
                error = describe_error(exc)
                await written("fail", lambda: mirror.fail_attempt(key, started_at, _now(), error))
                raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
            except Exception as exc:
                error = describe_error(exc)
                await written("fail", lambda: mirror.fail_attempt(key, started_at, _now(), error))
                raise
            completed_at = _now()
            # The transitions leaving the activity are checked before its Success is written, so
            # that the record of the check goes in the same statement; heartbeating meanwhile, as
            # the handler did (a slow condition must not time the attempt out). A condition that
            # raises leaves the check to the workflow (which records it); the step succeeded.
            evaluation = None
            if input.then_check:
                evaluation = await _heartbeating(evaluate(catalog, input.process_id, input.then_check, {**input.tokens, **ctx.outputs}))
                if evaluation.error is not None:
                    activity.logger.warning("conditions after %r not checked: %s", input.activity_name, describe_error(evaluation.error))
                    evaluation = None
            checked = (evaluation.chosen, evaluation.details()) if evaluation is not None else None
            completed = await written(
                "succeed",
                lambda: mirror.succeed_attempt(key, started_at, completed_at, ctx.outputs, completes=input.completes, checked=checked)
            )
            output = ActivityOutput(outputs=ctx.outputs, wait_until=ctx.wait_until, completed=completed)
            if evaluation is not None:
                output.chosen, output.checked = evaluation.chosen, True
            return output

        run.__name__ = run.__qualname__ = type_name
        return activity.defn(name=type_name)(run)

    def all(self) -> list[Callable[..., Any]]:
        """Every activity to register on a worker: the local ones and one per activity type."""
        own: list[Callable[..., Any]] = [
            self.begin_process,
            self.write_status,
            self.set_status,
            self.close_attempt,
            self.request_cancel,
            self.request_lock,
            self.process_runs,
            self.choose_transition,
            self.record_delivery,
            self.swap_begin,
            self.swap_step,
            self.swap_finish,
            self.swap_process,
        ]
        return own + [self.activity_for(kind) for kind in self.catalog.activities.values()]

    @staticmethod
    def _known(lookup: Callable[[str], Any], name: str) -> Any:
        try:
            return lookup(name)
        except UnknownType as exc:
            # A retry on this worker cannot fix it; the error names the missing type.
            raise ApplicationError(str(exc), type="UnknownType", non_retryable=True) from None


def _chosen_or_raise(evaluation: Evaluation) -> int | None:
    """The transition a check chose; a condition that raised fails the check (the workflow
    tries it again), for good if no retry can fix it (an unknown type, bad parameters)."""
    error = evaluation.error
    if error is None:
        return evaluation.chosen
    if isinstance(error, UnknownType | InvalidParameters):
        raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from None
    raise error


async def _begin_and_start(mirror: Mirror, key: AttemptKey, started_at: datetime) -> tuple[ProcessStatus, dict[str, str] | None]:
    with _not_found_is_final():
        return await mirror.begin_and_start_attempt(key, started_at)


@contextlib.contextmanager
def _not_found_is_final() -> Iterator[None]:
    """A process deleted from the mirror: no retry brings it back."""
    try:
        yield
    except ProcessNotFound as exc:
        raise ApplicationError(str(exc), type="ProcessNotFound", non_retryable=True) from None


async def _until_written(name: str, write: Callable[[], Awaitable[T]], *, metrics: WorkerMetrics | None) -> T:
    """A mirror write from inside an activity, retried (heartbeating meanwhile) for as long as
    Postgres cannot take it: an outage delays the attempt, it does not fail it. Every write
    here is safe to repeat. Errors that are not about the connection are raised at once.
    `name` labels its metrics: how long it took, retries included, and each retry."""
    delay, started, labels = WRITE_RETRY_FIRST, time.monotonic(), {"write": name}
    while True:
        try:
            result = await write()
            if metrics is not None:
                metrics.mirror_write.record(time.monotonic() - started, labels)
            return result
        except Exception as exc:
            if not is_transient(exc):
                raise
            activity.logger.warning("mirror write failed, retrying in %.1f s: %s", delay, describe_error(exc).splitlines()[0])
            if metrics is not None:
                metrics.mirror_retries.add(1, labels)
        activity.heartbeat()
        await asyncio.sleep(delay)
        delay = min(delay * 2, WRITE_RETRY_MAX)


def _cancel_reason() -> str:
    details = activity.cancellation_details()
    if details is not None and details.worker_shutdown:
        return "Cancelled: the worker shut down during the attempt"
    return "Cancelled: the process was cancelled during the attempt"


def _parameters(kind: Any, values: dict[str, Any]) -> Any:
    try:
        return kind.validate_parameters(values)
    except InvalidParameters as exc:
        raise ApplicationError(str(exc), type="InvalidParameters", non_retryable=True) from None
