"""The process workflow: a thin driver of the state machine in machine.py.

Handlers and Temporal outcomes become the machine's events; its effects become local
activities (mirror writes, condition checks, the lock queue, a swap's move), activities (one per
attempt, named after the activity type), timers and signals. Every effect runs as its own task
that hands its outcome back to the machine, so nothing here decides a status move.

Users steer a process with `pause`, `resume` and `cancel`, each both a signal (for the
`temporal` CLI and the web UI) and an update (for the Python client, which learns whether the
request was valid and waits until the mirror shows it). Cancelling the workflow from Temporal
(`temporal workflow cancel`, the web UI) is a cancel too. Sandbox-safe imports only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, is_cancelled_exception
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ActivityCancellationType, ActivityHandle

from ..states import ProcessStatus, Request
from . import machine as m
from .locks import LockGrant, LockRequest, lock_workflow_id
from .machine import Machine, Phase
from .messages import (
    EVENT_ATTRIBUTE,
    PROCESS_ID_ATTRIBUTE,
    PROCESS_WORKFLOW,
    STATUS_ATTRIBUTE,
    WORKFLOW_ATTRIBUTE,
    Activities,
    ActivityInput,
    ActivityOutput,
    AttemptClose,
    ChooseInput,
    ChooseOutput,
    Delivery,
    DeliveryRecord,
    Metrics,
    ProcessInput,
    ProcessPlan,
    ProcessResult,
    ProcessState,
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


class InvalidRequest(ApplicationError):
    """An update's answer: the request is not valid in the process's live state (or came too late).
    Its type and details are what a client reads back (`status_in`); recorded histories hold them."""

    TYPE = "InvalidStateChange"

    def __init__(self, process_id: int, status: ProcessStatus, request: Request) -> None:
        super().__init__(
            f"process {process_id} is {status.label}: cannot {request.value} it",
            process_id,
            int(status),
            request.value,
            type=self.TYPE,
            non_retryable=True,
        )

    @classmethod
    def status_in(cls, error: BaseException | None) -> ProcessStatus | None:
        """The process's status an update's failure names, if it is this refusal."""
        if isinstance(error, ApplicationError) and error.type == cls.TYPE and len(error.details) >= 2:
            return ProcessStatus(error.details[1])
        return None


@workflow.defn(name=PROCESS_WORKFLOW)
class ProcessWorkflow:
    """Runs one process: the machine decides, this carries it out."""

    def __init__(self) -> None:
        self.process_id = 0
        self.machine: Machine | None = None
        self.cancelled_in_temporal = False
        self.attribute: str | None = None  #: the WorkflowableStatus this run last set
        self.attempt: ActivityHandle[ActivityOutput] | None = None
        self.timers: dict[int, asyncio.Task[None]] = {}
        self.busy: set[asyncio.Task[None]] = set()  #: effects in flight other than timers
        self.closing = False  #: the run is ending: the last answers may go out
        self.lock_asked_at: datetime | None = None  #: for the lock wait's metric

    @workflow.run
    async def run(self, input: ProcessInput) -> ProcessResult:
        self.process_id = input.process_id
        driver = asyncio.create_task(self._drive(input))
        while True:
            try:
                await workflow.wait_condition(driver.done)
                return driver.result()
            except asyncio.CancelledError:
                if driver.done():
                    raise
                # Cancelled from Temporal: a cancel request like any other. The driver goes on
                # (it is not interrupted mid-write) and ends the run once the machine says so.
                self.cancelled_in_temporal = True
                if self.machine is not None:
                    self._on(Machine.cancelled_by_temporal)

    async def _drive(self, input: ProcessInput) -> ProcessResult:
        machine = self.machine = await self._begin(input)
        if self.cancelled_in_temporal:
            self._on(Machine.cancelled_by_temporal)
        self._after()
        renewing = asyncio.create_task(self._renew_lock()) if machine.plan.lock_key else None
        finish: m.Finish | None = None
        while finish is None:
            await workflow.wait_condition(lambda: bool(machine.effects) or self._may_continue())
            if not machine.effects and self._may_continue():
                # Every handler has finished and nothing is in flight; checked again here
                # because a handler may have run since the condition was seen.
                self._continue_as_new(machine, input)
            for effect in machine.take_effects():
                if isinstance(effect, m.Finish):
                    finish = effect
                else:
                    self._perform(effect)
        if renewing is not None:
            renewing.cancel()
        return await self._end(finish)

    async def _begin(self, input: ProcessInput) -> Machine:
        if input.carried is not None and input.plan is not None:
            return Machine.resume_carried(input.plan, input.carried, now=workflow.now())
        if input.plan is not None:
            # The trigger that created the process gave its plan: no local activity to read
            # it; the first attempt writes the begin (Running) before it runs.
            plan, status, begins_run = input.plan, S.RUNNING, True
        else:
            plan = await self._local(Activities.BEGIN_PROCESS, ProcessInput(input.process_id), ProcessPlan)
            status, begins_run = S(plan.status), False
        if input.carried is None:
            self._count(Metrics.PROCESSES_STARTED, "A process's workflow began", workflow=plan.workflow_name)
        self.attribute = S.RUNNING.label if input.attributes_set else None
        if not input.attributes_set:
            workflow.upsert_search_attributes(
                [
                    PROCESS_ID_ATTRIBUTE.value_set(plan.process_id),
                    WORKFLOW_ATTRIBUTE.value_set(plan.workflow_name),
                    EVENT_ATTRIBUTE.value_set(plan.event_name),
                    STATUS_ATTRIBUTE.value_set(status.label),
                ]
            )
            self.attribute = status.label
        return Machine.begin(plan, status, now=workflow.now(), begins_run=begins_run)

    def _may_continue(self) -> bool:
        assert self.machine is not None
        return self.machine.phase is Phase.CONTINUING and not self.busy and workflow.all_handlers_finished()

    def _continue_as_new(self, machine: Machine, input: ProcessInput) -> None:
        plan = machine.plan
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(PROCESS_ID_ATTRIBUTE, plan.process_id),
                SearchAttributePair(WORKFLOW_ATTRIBUTE, plan.workflow_name),
                SearchAttributePair(EVENT_ATTRIBUTE, plan.event_name),
                SearchAttributePair(STATUS_ATTRIBUTE, machine.written.label),
            ]
        )
        carried = ProcessInput(input.process_id, plan, attributes_set=True, carried=machine.carried())
        workflow.continue_as_new(carried, search_attributes=attributes)

    async def _end(self, finish: m.Finish) -> ProcessResult:
        assert self.machine is not None
        if not finish.moved:
            workflow_name = self.machine.plan.workflow_name
            self._count(Metrics.PROCESSES_ENDED, "A process ended", workflow=workflow_name, status=finish.status.label)
        cancelled = finish.status is S.CANCELLED and not finish.moved
        if cancelled and not self.cancelled_in_temporal:
            # Temporal shows the run Canceled only if it was asked to cancel it; a workflow
            # cannot ask that of itself, so a local activity does.
            await self._local(Activities.REQUEST_CANCEL, workflow.info().workflow_id)
            await workflow.wait_condition(lambda: self.cancelled_in_temporal)
        # The cancel requests' answers go out with the run's end, so that a caller who is told
        # "Cancelled" finds the workflow closed.
        self.closing = True
        await workflow.wait_condition(lambda: not self.busy and workflow.all_handlers_finished())
        if finish.status is S.FAILED:
            raise ApplicationError(finish.error or "an activity failed", type="ActivityFailed", non_retryable=True)
        if cancelled:
            raise asyncio.CancelledError()
        plan = self.machine.plan
        return ProcessResult(plan.process_id, plan.workflow_name, finish.status.label, dict(self.machine.tokens))

    # Events: every one goes through the machine, then the run's own view follows it.

    def _on(self, event: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        machine = self.machine
        assert machine is not None
        machine.now = workflow.now()
        machine.continue_suggested = workflow.info().is_continue_as_new_suggested()
        event(machine, *args, **kwargs)
        self._after()

    def _after(self) -> None:
        """Keep the search attribute and the current details in step with the machine."""
        machine = self.machine
        assert machine is not None
        if machine.written.label != self.attribute:
            self.attribute = machine.written.label
            workflow.upsert_search_attributes([STATUS_ATTRIBUTE.value_set(self.attribute)])
        workflow.set_current_details(f"Process {self.process_id} of workflow {machine.plan.workflow_name!r}: {_doing(machine)}")

    # Effects

    def _perform(self, effect: m.Effect) -> None:
        if isinstance(effect, m.Write):
            self._task(self._write(effect))
        elif isinstance(effect, m.Begin):
            self._task(self._begin_late())
        elif isinstance(effect, m.Choose):
            self._task(self._choose(effect))
        elif isinstance(effect, m.RunAttempt):
            self._task(self._run_attempt(effect))
        elif isinstance(effect, m.CancelAttempt):
            if self.attempt is not None:
                self.attempt.cancel()
        elif isinstance(effect, m.CloseAttempt):
            self._task(self._close_attempt(effect))
        elif isinstance(effect, m.StartTimer):
            self.timers[effect.timer] = asyncio.create_task(self._timer(effect))
        elif isinstance(effect, m.CancelTimer):
            timer = self.timers.pop(effect.timer, None)
            if timer is not None:
                timer.cancel()
        elif isinstance(effect, m.AskLock):
            self._task(self._ask_for_lock())
        elif isinstance(effect, m.ReleaseLock):
            self._task(self._signal_lock(Signals.RELEASE, LockGrant(self._lock_key(), effect.generation)))
        elif isinstance(effect, m.WithdrawLock):
            self._task(self._signal_lock(Signals.WITHDRAW, workflow.info().workflow_id))
        elif isinstance(effect, m.Move):
            self._task(self._move(effect))
        # ContinueAsNew: the run loop sees the machine's phase.

    def _task(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.busy.add(task)
        task.add_done_callback(self.busy.discard)

    async def _local(self, name: str, arg: Any, result_type: type | None = None) -> Any:
        return await workflow.execute_local_activity(
            name, arg, result_type=result_type, start_to_close_timeout=MIRROR_TIMEOUT, retry_policy=MIRROR_RETRY
        )

    async def _write(self, write: m.Write) -> None:
        change = StatusWrite(
            self.process_id,
            int(write.status),
            workflow.info().run_id,
            next_run_at=write.next_run_at,
            error=write.error,
            paused_from=int(write.paused_from) if write.paused_from is not None else None,
        )
        status_now = await self._local(Activities.WRITE_STATUS, change, int)
        self._on(Machine.written_as, S(status_now))

    async def _begin_late(self) -> None:
        plan = await self._local(Activities.BEGIN_PROCESS, ProcessInput(self.process_id), ProcessPlan)
        self._on(Machine.begun, S(plan.status))

    async def _choose(self, choose: m.Choose) -> None:
        assert self.machine is not None
        check = ChooseInput(
            self.process_id,
            list(choose.transitions),
            dict(self.machine.tokens),
            choose.deliveries,
            choose.waited.total_seconds(),
            with_deliveries=True,
            cause=choose.cause,
        )
        outcome = ChooseOutput.of(await self._local(Activities.CHOOSE_TRANSITION, check))
        before = self.machine.deliveries
        self._on(Machine.chosen_is, outcome.chosen, tuple(outcome.deliveries))
        self._count_deliveries(before)

    async def _run_attempt(self, run: m.RunAttempt) -> None:
        assert self.machine is not None
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
                dict(self.machine.tokens),
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
                self._on(Machine.attempt_cancelled, reason)
            else:
                retryable = not (isinstance(err.cause, ApplicationError) and err.cause.non_retryable)
                self._on(Machine.attempt_failed, reason, retryable=retryable, timed_out=isinstance(err.cause, ActivityTimeout))
            return
        finally:
            self.attempt = None
        if output.not_begun is not None:
            self._on(Machine.not_begun, S(output.not_begun))
        else:
            self._on(Machine.attempt_succeeded, output)

    async def _close_attempt(self, close: m.CloseAttempt) -> None:
        await self._local(
            Activities.CLOSE_ATTEMPT,
            AttemptClose(self.process_id, close.activity_id, workflow.info().run_id, close.step, close.attempt, close.error),
        )

    async def _timer(self, timer: m.StartTimer) -> None:
        why = "next check of the transitions" if timer.phase is Phase.WAITING else "pause before the next attempt"
        await workflow.sleep(max(timer.at - workflow.now(), timedelta(milliseconds=1)), summary=why)
        self.timers.pop(timer.timer, None)
        self._on(Machine.timer_fired, timer.timer)

    async def _move(self, move: m.Move) -> None:
        new_id = await self._local(Activities.SWAP_PROCESS, SwapMove(move.swap_id, self.process_id, workflow.info().run_id))
        if new_id is None:
            workflow.logger.warning("swap %s did not move process %s; it goes on", move.swap_id, self.process_id)
        self._on(Machine.moved, new_id)

    # The lock key

    def _lock_key(self) -> str:
        assert self.machine is not None and self.machine.plan.lock_key is not None
        return self.machine.plan.lock_key

    async def _ask_for_lock(self) -> None:
        assert self.machine is not None
        self.lock_asked_at = workflow.now()
        info = workflow.info()
        await self._local(
            Activities.REQUEST_LOCK, LockRequest(self._lock_key(), info.workflow_id, info.task_queue, self.machine.plan.lock_lease_seconds)
        )

    async def _signal_lock(self, signal: str, arg: object) -> None:
        try:
            await workflow.get_external_workflow_handle(lock_workflow_id(self._lock_key())).signal(signal, arg)
        except FailureError:
            pass  # the lock workflow is gone: nothing is held there

    async def _renew_lock(self) -> None:
        """While holding the key, renew its lease every third of it."""
        machine = self.machine
        assert machine is not None
        every = timedelta(seconds=machine.plan.lock_lease_seconds / 3)
        while True:
            await workflow.wait_condition(lambda: machine.lock_generation is not None)
            await workflow.sleep(every)
            if machine.lock_generation is not None:
                await self._signal_lock(Signals.RENEW, LockGrant(self._lock_key(), machine.lock_generation))

    @workflow.signal(name=Signals.GRANTED)
    def granted(self, grant: LockGrant) -> None:
        """From the lock workflow: the key is this process's."""
        if self.machine is None or grant.key != self.machine.plan.lock_key:
            return
        self._on(Machine.granted, grant.generation)
        if self.machine.lock_generation == grant.generation and self.lock_asked_at is not None:
            waited = (workflow.now() - self.lock_asked_at).total_seconds()
            self.lock_asked_at = None
            meter = workflow.metric_meter()
            wait = meter.create_histogram_float(Metrics.LOCK_WAIT, "From asking for a lock key to holding it", "s")
            wait.record(waited, {"workflow": self.machine.plan.workflow_name})

    @workflow.signal(name=Signals.LOST)
    def lost(self, grant: LockGrant) -> None:
        """From the lock workflow: the lease ran out (this workflow did not renew in time)."""
        if self.machine is not None:
            self._on(Machine.lost, grant.generation)

    # Metrics (recorded only as the workflow runs, not as it replays)

    def _count(self, name: str, description: str, **labels: str) -> None:
        workflow.metric_meter().create_counter(name, description).add(1, labels)

    def _count_deliveries(self, before: int) -> None:
        assert self.machine is not None
        if self.machine.deliveries > before:
            counter = workflow.metric_meter().create_counter(Metrics.DELIVERIES, "Events a process took in")
            counter.add(self.machine.deliveries - before, {"workflow": self.machine.plan.workflow_name})

    # Requests: signals for the CLI and UI, updates for the client

    async def _request(self, request: Request, *, strict: bool) -> str:
        await workflow.wait_condition(lambda: self.machine is not None)
        machine = self.machine
        assert machine is not None
        machine.now = workflow.now()
        ticket = machine.request(request)
        self._after()
        await workflow.wait_condition(lambda: machine.answer(ticket)[0])
        refused = machine.answer(ticket)[1]
        machine.forget(ticket)
        if request is Request.CANCEL and refused is None:
            await workflow.wait_condition(lambda: self.closing)
        if refused is not None:
            if strict:
                raise InvalidRequest(self.process_id, refused.status, request)
            workflow.logger.warning("%s signal not applied: process %s is %s", request.value, self.process_id, refused.status.label)
        return machine.status.label

    def _check(self, request: Request) -> None:
        if self.machine is None:
            return  # not begun yet: the handler checks once the plan is loaded
        refused = self.machine.refusal(request)
        if refused is not None:
            raise InvalidRequest(self.process_id, refused.status, request)

    @workflow.signal(name=Signals.PAUSE)
    async def pause_signal(self) -> None:
        await self._request(Request.PAUSE, strict=False)

    @workflow.signal(name=Signals.RESUME)
    async def resume_signal(self) -> None:
        await self._request(Request.RESUME, strict=False)

    @workflow.signal(name=Signals.CANCEL)
    async def cancel_signal(self) -> None:
        await self._request(Request.CANCEL, strict=False)

    @workflow.update(name=Signals.PAUSE)
    async def pause(self) -> str:
        return await self._request(Request.PAUSE, strict=True)

    @pause.validator
    def _validate_pause(self) -> None:
        self._check(Request.PAUSE)

    @workflow.update(name=Signals.RESUME)
    async def resume(self) -> str:
        return await self._request(Request.RESUME, strict=True)

    @resume.validator
    def _validate_resume(self) -> None:
        self._check(Request.RESUME)

    @workflow.update(name=Signals.CANCEL)
    async def cancel(self) -> str:
        return await self._request(Request.CANCEL, strict=True)

    @cancel.validator
    def _validate_cancel(self) -> None:
        self._check(Request.CANCEL)

    @workflow.signal(name=Signals.WAKE)
    async def wake(self) -> None:
        """Check the transitions now instead of at the end of the wait."""
        await workflow.wait_condition(lambda: self.machine is not None)
        self._on(Machine.wake)

    @workflow.signal(name=Signals.DELIVER)
    async def deliver(self, delivery: Delivery) -> None:
        """An event delivered to the process: from `trigger_event`, recorded in the mirror; sent
        by hand (no `seq`), recorded here first."""
        await workflow.wait_condition(lambda: self.machine is not None)
        if not delivery.seq:
            record = DeliveryRecord(self.process_id, delivery.event, delivery.tokens, str(workflow.uuid4()))
            try:
                recorded = await self._local(Activities.RECORD_DELIVERY, record, Delivery)
            except (ActivityError, ApplicationError) as err:
                workflow.logger.warning("delivery of %r to process %s not recorded: %s", delivery.event, self.process_id, err.cause or err)
                return
            if recorded is None:
                return  # the process has ended
            delivery = recorded
        assert self.machine is not None
        before = self.machine.deliveries
        self._on(Machine.delivered, delivery)
        self._count_deliveries(before)

    @workflow.signal(name=Signals.SWAP)
    async def swap(self, swap_id: int) -> None:
        """From a swap's runner: move onto its new workflow at the next boundary."""
        await workflow.wait_condition(lambda: self.machine is not None)
        self._on(Machine.swap, swap_id)

    @workflow.query(name=Signals.STATE)
    def state(self) -> ProcessState:
        machine = self.machine
        if machine is None:
            return ProcessState(self.process_id, int(S.DISPATCHED), S.DISPATCHED.label, None, {}, None, self.cancelled_in_temporal, None)
        return ProcessState(
            process_id=self.process_id,
            status=int(machine.status),
            status_label=machine.status.label,
            position=machine.position,
            tokens=dict(machine.tokens),
            paused_from=int(machine.paused_from) if machine.paused_from else None,
            cancelling=machine.cancel_requested,
            next_run_at=machine.next_run_at if machine.status is S.PENDING else None,
        )


def _waiting_for(machine: Machine) -> str:
    """The events a waiting process listens for, with the values that match it (its tokens),
    and when its next deadline passes."""
    said = []
    for listening in machine.plan.listens:
        values = ", ".join(f"{field}={machine.tokens.get(key, '?')}" for field, key in listening.match.items())
        said.append(f"{listening.event} with {values}")
    waiting = f"waiting for {' or '.join(said)}; " if said else "no transition passes; "
    ahead = sorted(deadline for deadline in machine.deadlines() if deadline > machine.now)
    return waiting + (f"a deadline passes at {ahead[0].isoformat(timespec='seconds')}; " if ahead else "")


def _doing(machine: Machine) -> str:
    """What the Temporal UI shows as the workflow's current details."""
    if machine.status is S.PAUSED:
        return "Paused"
    if machine.phase is Phase.ATTEMPT and machine.attempt is not None:
        run = machine.attempt
        return f"running activity {run.activity.name!r} ({run.activity.type_name}), attempt {run.attempt} of {run.activity.max_attempts}"
    if machine.phase is Phase.WAITING and machine.next_run_at is not None:
        return f"Pending: {_waiting_for(machine)}checking again at {machine.next_run_at.isoformat(timespec='seconds')}"
    if machine.phase is Phase.LOCKING:
        return f"waiting for lock key {machine.plan.lock_key!r}"
    if machine.phase is Phase.BACKOFF:
        return "waiting to try the activity again"
    return machine.status.label
