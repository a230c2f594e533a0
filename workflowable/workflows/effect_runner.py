"""The process workflow's hands: each effect of the machine carried out as its own task.

A write, a check or a swap's move is a local activity; an attempt is an activity named after
its type; a timer is a workflow timer; the lock key is asked for through a local activity and
held, renewed and given back by signals to its lock workflow. Each task hands its outcome back
to the machine through `on` (the workflow's way of feeding it an event), so nothing here decides
a status move. Deterministic imports and calls only: it runs outside Temporal's sandbox
(process.py says why).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, is_cancelled_exception
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ActivityCancellationType, ActivityHandle

from ..states import ProcessStatus
from . import effects as fx
from .effects import Phase
from .locks import LockGrant, LockRequest, lock_workflow_id
from .machine import Machine
from .messages import (
    Activities,
    ActivityInput,
    ActivityOutput,
    AttemptClose,
    ChooseInput,
    ChooseOutput,
    ProcessInput,
    ProcessPlan,
    Signals,
    StatusWrite,
)
from .swaps import SwapMove

S = ProcessStatus

#: Mirror writes are local activities: short, retried until Postgres takes them.
MIRROR_TIMEOUT = timedelta(seconds=30)
MIRROR_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
#: Activities heartbeat every second (see activities.py), so a cancel reaches them in seconds
#: and a dead worker's attempt times out after this long instead of its whole timeout.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)

#: Runs begun before this let an attempt in flight run on when the mirror showed Cancelled.
STOP_WHEN_MIRROR_CANCELLED = "stop-attempt-when-mirror-cancelled"

#: How an effect's outcome reaches the machine: the event (a Machine method) and its arguments.
On = Callable[..., None]


async def local(name: str, arg: Any, result_type: type | None = None) -> Any:
    """A local activity of the mirror, retried until Postgres takes it."""
    return await workflow.execute_local_activity(name, arg, result_type=result_type, start_to_close_timeout=MIRROR_TIMEOUT, retry_policy=MIRROR_RETRY)


class EffectRunner:
    """Carries out one run's effects. `busy` holds the tasks in flight other than timers: the
    run continues as new or ends only once it is empty."""

    def __init__(self, process_id: int, machine: Machine, on: On) -> None:
        self.process_id = process_id
        self.machine = machine
        self.on = on
        self.attempt: ActivityHandle[ActivityOutput] | None = None
        self.timers: dict[int, asyncio.Task[None]] = {}
        self.busy: set[asyncio.Task[None]] = set()
        self.lock_asked_at: datetime | None = None  #: for the lock wait's metric

    def perform(self, effect: fx.Effect) -> None:
        """Start carrying out `effect`; its outcome comes back as the machine's event."""
        if isinstance(effect, fx.Write):
            self._task(self._write(effect))
        elif isinstance(effect, fx.Begin):
            self._task(self._begin_late())
        elif isinstance(effect, fx.Choose):
            self._task(self._choose(effect))
        elif isinstance(effect, fx.RunAttempt):
            self._task(self._run_attempt(effect))
        elif isinstance(effect, fx.CancelAttempt):
            if self.attempt is not None and (not effect.by_mirror or workflow.patched(STOP_WHEN_MIRROR_CANCELLED)):
                self.attempt.cancel()
        elif isinstance(effect, fx.CloseAttempt):
            self._task(self._close_attempt(effect))
        elif isinstance(effect, fx.StartTimer):
            self.timers[effect.timer] = asyncio.create_task(self._timer(effect))
        elif isinstance(effect, fx.CancelTimer):
            timer = self.timers.pop(effect.timer, None)
            if timer is not None:
                timer.cancel()
        elif isinstance(effect, fx.AskLock):
            self._task(self._ask_for_lock())
        elif isinstance(effect, fx.ReleaseLock):
            self._task(self._signal_lock(Signals.RELEASE, LockGrant(self._lock_key(), effect.generation)))
        elif isinstance(effect, fx.WithdrawLock):
            self._task(self._signal_lock(Signals.WITHDRAW, workflow.info().workflow_id))
        elif isinstance(effect, fx.Move):
            self._task(self._move(effect))
        # ContinueAsNew: the run loop sees the machine's phase.

    def _task(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.busy.add(task)
        task.add_done_callback(self.busy.discard)

    async def _write(self, write: fx.Write) -> None:
        change = StatusWrite(
            self.process_id,
            int(write.status),
            workflow.info().run_id,
            next_run_at=write.next_run_at,
            error=write.error,
            paused_from=int(write.paused_from) if write.paused_from is not None else None,
        )
        status_now = await local(Activities.WRITE_STATUS, change, int)
        self.on(Machine.written_as, S(status_now))

    async def _begin_late(self) -> None:
        plan = await local(Activities.BEGIN_PROCESS, ProcessInput(self.process_id), ProcessPlan)
        self.on(Machine.begun, S(plan.status))

    async def _choose(self, choose: fx.Choose) -> None:
        check = ChooseInput(
            self.process_id,
            list(choose.transitions),
            dict(self.machine.walk.tokens),
            choose.deliveries,
            choose.waited.total_seconds(),
            with_deliveries=True,
            cause=choose.cause,
        )
        outcome = ChooseOutput.of(await local(Activities.CHOOSE_TRANSITION, check))
        self.on(Machine.chosen_is, outcome.chosen, tuple(outcome.deliveries))

    async def _run_attempt(self, run: fx.RunAttempt) -> None:
        step = run.activity
        self.attempt = workflow.start_activity(
            step.type_name,
            ActivityInput(
                self.process_id,
                step.id,
                step.name,
                run.step,
                run.attempt,
                step.parameters,
                dict(self.machine.walk.tokens),
                list(run.then_check),
                run.completes,
                run.begins_run,
                self.machine.plan.workflow_name,
            ),
            result_type=ActivityOutput,
            activity_id=f"step-{run.step}.{run.attempt}",
            summary=f"{step.name}: step {run.step}, attempt {run.attempt} of {step.max_attempts}",
            start_to_close_timeout=timedelta(seconds=step.timeout_seconds),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        try:
            output = await self.attempt
        except ActivityError as err:
            reason = f"activity {step.name!r} failed: {err.cause or err}"
            if is_cancelled_exception(err):
                self.on(Machine.attempt_cancelled, reason)
            else:
                retryable = not (isinstance(err.cause, ApplicationError) and err.cause.non_retryable)
                self.on(Machine.attempt_failed, reason, retryable=retryable, timed_out=isinstance(err.cause, ActivityTimeout))
            return
        finally:
            self.attempt = None
        if output.not_begun is not None:
            self.on(Machine.not_begun, S(output.not_begun))
        else:
            self.on(Machine.attempt_succeeded, output)

    async def _close_attempt(self, close: fx.CloseAttempt) -> None:
        await local(
            Activities.CLOSE_ATTEMPT,
            AttemptClose(self.process_id, close.activity_id, workflow.info().run_id, close.step, close.attempt, close.error),
        )

    async def _timer(self, timer: fx.StartTimer) -> None:
        why = "next check of the transitions" if timer.phase is Phase.WAITING else "pause before the next attempt"
        await workflow.sleep(max(timer.at - workflow.now(), timedelta(milliseconds=1)), summary=why)
        self.timers.pop(timer.timer, None)
        self.on(Machine.timer_fired, timer.timer)

    async def _move(self, move: fx.Move) -> None:
        new_id = await local(Activities.SWAP_PROCESS, SwapMove(move.swap_id, self.process_id, workflow.info().run_id))
        if new_id is None:
            workflow.logger.warning("swap %s did not move process %s; it goes on", move.swap_id, self.process_id)
        self.on(Machine.moved, new_id)

    # The lock key

    def _lock_key(self) -> str:
        assert self.machine.plan.lock_key is not None
        return self.machine.plan.lock_key

    async def _ask_for_lock(self) -> None:
        self.lock_asked_at = workflow.now()
        info = workflow.info()
        await local(
            Activities.REQUEST_LOCK, LockRequest(self._lock_key(), info.workflow_id, info.task_queue, self.machine.plan.lock_lease_seconds)
        )

    async def _signal_lock(self, signal: str, arg: object) -> None:
        try:
            await workflow.get_external_workflow_handle(lock_workflow_id(self._lock_key())).signal(signal, arg)
        except FailureError:
            pass  # the lock workflow is gone: nothing is held there

    async def renew_lock(self) -> None:
        """While holding the key, renew its lease every third of it (a task for the run's life)."""
        machine = self.machine
        every = timedelta(seconds=machine.plan.lock_lease_seconds / 3)
        while True:
            await workflow.wait_condition(lambda: machine.lock_generation is not None)
            await workflow.sleep(every)
            if machine.lock_generation is not None:
                await self._signal_lock(Signals.RENEW, LockGrant(self._lock_key(), machine.lock_generation))

