"""The process workflow: a thin driver of the state machine in machine.py.

Handlers and Temporal outcomes become the machine's events; its effects become local
activities (mirror writes, condition checks, the lock queue, a swap's move), activities (one per
attempt, named after the activity type), timers and signals. Every effect runs as its own task
that hands its outcome back to the machine, so nothing here decides a status move.

Users steer a process with `pause`, `resume` and `cancel`, each both a signal (for the
`temporal` CLI and the web UI) and an update (for the Python client, which learns whether the
request was valid and waits until the mirror shows it). Cancelling the workflow from Temporal
(`temporal workflow cancel`, the web UI) is a cancel too. Deterministic imports and calls only:
it runs outside Temporal's sandbox (see the class).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError

from ..states import ProcessStatus, Request
from . import effects as fx
from .effect_runner import EffectRunner, local
from .effects import Phase
from .locks import LockGrant
from .machine import Machine
from .messages import (
    EVENT_ATTRIBUTE,
    PROCESS_ID_ATTRIBUTE,
    PROCESS_WORKFLOW,
    STATUS_ATTRIBUTE,
    WORKFLOW_ATTRIBUTE,
    Activities,
    Delivery,
    DeliveryRecord,
    Metrics,
    ProcessInput,
    ProcessPlan,
    ProcessResult,
    ProcessState,
    Signals,
)

S = ProcessStatus



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


# Outside Temporal's sandbox: the sandbox guards workflow code its authors may get wrong, and
# this code is ours alone (users' code runs in activities), pure where it decides
# (tests/unit/test_workflow_imports.py holds it to deterministic imports and calls) and replayed
# from recorded histories. In the sandbox, every activation and every payload the SDK converts
# re-enters it, which cost a process about a fifth of its worker's Python (docs/performance.md).
@workflow.defn(name=PROCESS_WORKFLOW, sandboxed=False)
class ProcessWorkflow:
    """Runs one process: the machine decides, this carries it out."""

    def __init__(self) -> None:
        self.process_id = 0
        self.machine: Machine | None = None
        self.cancelled_in_temporal = False
        self.attribute: str | None = None  #: the WorkflowableStatus this run last set
        self.runner: EffectRunner | None = None  #: carries out the machine's effects, once it has begun
        self.closing = False  #: the run is ending: the last answers may go out

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
        runner = self.runner = EffectRunner(self.process_id, machine, self._on)
        if self.cancelled_in_temporal:
            self._on(Machine.cancelled_by_temporal)
        self._after()
        renewing = asyncio.create_task(runner.renew_lock()) if machine.plan.lock_key else None
        finish: fx.Finish | None = None
        while finish is None:
            await workflow.wait_condition(lambda: bool(machine.effects) or self._may_continue())
            if not machine.effects and self._may_continue():
                # Every handler has finished and nothing is in flight; checked again here
                # because a handler may have run since the condition was seen.
                self._continue_as_new(machine, input)
            for effect in machine.take_effects():
                if isinstance(effect, fx.Finish):
                    finish = effect
                else:
                    runner.perform(effect)
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
            plan = await local(Activities.BEGIN_PROCESS, ProcessInput(input.process_id), ProcessPlan)
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
        assert self.machine is not None and self.runner is not None
        return self.machine.phase is Phase.CONTINUING and not self.runner.busy and workflow.all_handlers_finished()

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

    async def _end(self, finish: fx.Finish) -> ProcessResult:
        assert self.machine is not None and self.runner is not None
        runner = self.runner
        if not finish.moved:
            workflow_name = self.machine.plan.workflow_name
            self._count(Metrics.PROCESSES_ENDED, "A process ended", workflow=workflow_name, status=finish.status.label)
        cancelled = finish.status is S.CANCELLED and not finish.moved
        if cancelled and not self.cancelled_in_temporal:
            # Temporal shows the run Canceled only if it was asked to cancel it; a workflow
            # cannot ask that of itself, so a local activity does.
            await local(Activities.REQUEST_CANCEL, workflow.info().workflow_id)
            await workflow.wait_condition(lambda: self.cancelled_in_temporal)
        # The cancel requests' answers go out with the run's end, so that a caller who is told
        # "Cancelled" finds the workflow closed.
        self.closing = True
        await workflow.wait_condition(lambda: not runner.busy and workflow.all_handlers_finished())
        if finish.status is S.FAILED:
            raise ApplicationError(finish.error or "an activity failed", type="ActivityFailed", non_retryable=True)
        if cancelled:
            raise asyncio.CancelledError()
        plan = self.machine.plan
        return ProcessResult(plan.process_id, plan.workflow_name, finish.status.label, dict(self.machine.walk.tokens))

    # Events: every one goes through the machine, then the run's own view follows it.

    def _on(self, event: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        machine = self.machine
        assert machine is not None
        machine.now = workflow.now()
        machine.continue_suggested = workflow.info().is_continue_as_new_suggested()
        deliveries = machine.walk.deliveries
        event(machine, *args, **kwargs)
        self._count_deliveries(deliveries)
        self._after()

    def _after(self) -> None:
        """Keep the search attribute and the current details in step with the machine."""
        machine = self.machine
        assert machine is not None
        if machine.written.label != self.attribute:
            self.attribute = machine.written.label
            workflow.upsert_search_attributes([STATUS_ATTRIBUTE.value_set(self.attribute)])
        workflow.set_current_details(f"Process {self.process_id} of workflow {machine.plan.workflow_name!r}: {_doing(machine)}")

    @workflow.signal(name=Signals.GRANTED)
    def granted(self, grant: LockGrant) -> None:
        """From the lock workflow: the key is this process's."""
        if self.machine is None or grant.key != self.machine.plan.lock_key:
            return
        self._on(Machine.granted, grant.generation)
        runner = self.runner
        if runner is not None and self.machine.lock_generation == grant.generation and runner.lock_asked_at is not None:
            waited = (workflow.now() - runner.lock_asked_at).total_seconds()
            runner.lock_asked_at = None
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
        if self.machine.walk.deliveries > before:
            counter = workflow.metric_meter().create_counter(Metrics.DELIVERIES, "Events a process took in")
            counter.add(self.machine.walk.deliveries - before, {"workflow": self.machine.plan.workflow_name})

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
                recorded = await local(Activities.RECORD_DELIVERY, record, Delivery)
            except (ActivityError, ApplicationError) as err:
                workflow.logger.warning("delivery of %r to process %s not recorded: %s", delivery.event, self.process_id, err.cause or err)
                return
            if recorded is None:
                return  # the process has ended
            delivery = recorded
        self._on(Machine.delivered, delivery)

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
            position=machine.walk.position,
            tokens=dict(machine.walk.tokens),
            paused_from=int(machine.paused_from) if machine.paused_from else None,
            cancelling=machine.cancel_requested,
            next_run_at=machine.next_run_at if machine.status is S.PENDING else None,
        )


def _waiting_for(machine: Machine) -> str:
    """The events a waiting process listens for, with the values that match it (its tokens),
    and when its next deadline passes."""
    said = []
    for listening in machine.plan.listens:
        values = ", ".join(f"{field}={machine.walk.tokens.get(key, '?')}" for field, key in listening.match.items())
        said.append(f"{listening.event} with {values}")
    waiting = f"waiting for {' or '.join(said)}; " if said else "no transition passes; "
    ahead = sorted(deadline for deadline in machine.walk.deadlines(machine.now) if deadline > machine.now)
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
