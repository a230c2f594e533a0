"""The first process workflow, kept registered (type `WorkflowProcess`) for runs started before
the state-machine core (process.py, type `WorkflowProcessV2`) replaced it: a run replays on the
code that began it. Do not change its behaviour; delete it once no such run is open
(`temporal workflow list --query 'WorkflowType="WorkflowProcess" AND ExecutionStatus="Running"'`).
Its methods are unchanged since then; they sit in four classes (its state and status writes,
its requests, what holds it between attempts, the walk), each read on its own, and Temporal
registers the handlers of all four on the one workflow type.

The one Temporal workflow type that ran every process by interpreting its workflow's graph.

It never touches the database: the plan is loaded, conditions are checked and every status
move is written by local activities, and each activity runs as the Temporal activity named
after its type. Sandbox-safe imports only (states, messages, and the swap messages).

Users steer a process with `pause`, `resume` and `cancel`, each both a signal (for the
`temporal` CLI and the web UI) and an update (for the Python client, which learns whether the
request was valid and waits until the mirror shows it). Handlers only change state; one task
writes each status change to the mirror in order, and the run loop waits on conditions.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, is_cancelled_exception
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ActivityCancellationType

from ..states import ProcessStatus, Request
from .effect_runner import HEARTBEAT_TIMEOUT, MIRROR_RETRY, MIRROR_TIMEOUT
from .locks import LockGrant, LockRequest, lock_workflow_id
from .messages import (
    EVENT_ATTRIBUTE,
    PROCESS_ID_ATTRIBUTE,
    PROCESS_WORKFLOW_V1,
    STATUS_ATTRIBUTE,
    WORKFLOW_ATTRIBUTE,
    ActivityInput,
    ActivityOutput,
    ActivityStep,
    AttemptClose,
    ChooseInput,
    ProcessInput,
    ProcessPlan,
    ProcessState,
    StatusChange,
    TransitionStep,
)
from .process import InvalidRequest
from .swaps import SWAP_SIGNAL, SwapMove
from .walk import MAX_BACKOFF, to_check

S = ProcessStatus

_to_check = to_check  # shared with the current core, as are its timeouts and InvalidRequest


class _Moving(Exception):
    """Raised at a boundary once a swap asked the process to move; caught by the run loop."""


class _V1State:
    """The first workflow's state, and its status changes: handlers only change state; one task
    (`_mirror_loop`) writes each change to the mirror in order."""

    def __init__(self) -> None:
        self.plan: ProcessPlan | None = None
        self.process_id = 0
        self.status = S.DISPATCHED
        self.paused_from: ProcessStatus | None = None
        self.cancelling = False
        self.woken = False
        self.position: int | None = None
        self.tokens: dict[str, str] = {}
        self.step = 0
        self.wait_until: datetime | None = None
        self.next_run_at: datetime | None = None
        self.error: str | None = None
        # Every status change bumps `version`; the mirror task writes them in order.
        self.version = 0
        self.mirrored_version = 0
        self.written_status: ProcessStatus | None = None  #: the status the mirror was last given
        # The lock key, if the event gave one: the generation held, or whether one is asked for.
        self.lock_key: str | None = None
        self.lock_generation: int | None = None
        self.lock_wanted = False
        self.swap_id: int | None = None  #: a swap asked this process to move to its new workflow
        # Conditions the last activity checked as it succeeded: (position, waits, chosen id).
        # Used only if the process went straight on; any wait (pause, lock, timer) bumps `waits`.
        self.prechecked: tuple[int, int, int | None] | None = None
        self.waits = 0
        self.in_flight = False  #: an attempt is running
        self.refused_version = 0  #: the last version whose status the mirror did not take
        self.begins_run = False  #: the next attempt writes the run's begin (the plan came with the input)

    def _details(self, doing: str) -> None:
        """What the Temporal UI shows as the workflow's current details."""
        assert self.plan is not None
        workflow.set_current_details(f"Process {self.process_id} of workflow {self.plan.workflow_name!r}: {doing}")

    @workflow.signal(name=SWAP_SIGNAL)
    def swap(self, swap_id: int) -> None:
        """From a swap's runner: move onto its new workflow at the next boundary (between
        activities, while waiting, while paused). A process being cancelled stays cancelled."""
        if self.swap_id is None and not self.cancelling:
            self.swap_id = swap_id

    def _stop_if_moving(self) -> None:
        if self.swap_id is not None:
            raise _Moving()

    def _set(self, status: ProcessStatus) -> None:
        self.status = status
        self.version += 1

    async def _mirrored(self) -> None:
        target = self.version
        await workflow.wait_condition(lambda: self.mirrored_version >= target)

    async def _mirror_loop(self) -> None:
        """Write status changes to the mirror one at a time. Changes made while a write is in
        flight are written together as the latest status, which is always a valid move from
        the last one written (the run loop waits for each of its own moves to be written, so
        what piles up can only be pause and resume toggles, or a cancel)."""
        while True:
            await workflow.wait_condition(lambda: self.mirrored_version < self.version)
            version, status = self.version, self.status
            if status is not self.written_status:
                change = StatusChange(
                    self.process_id,
                    status,
                    next_run_at=self.next_run_at if status is S.PENDING else None,
                    error=self.error if status is S.FAILED else None,
                    paused_from=int(self.paused_from) if status is S.PAUSED and self.paused_from else None,
                )
                applied = await workflow.execute_local_activity(
                    "workflowable.set_status", change, start_to_close_timeout=MIRROR_TIMEOUT, retry_policy=MIRROR_RETRY
                )
                if applied:
                    workflow.upsert_search_attributes([STATUS_ATTRIBUTE.value_set(status.label)])
                    self.written_status = status
                else:  # the mirror moved on: the last activity's own write ended the process
                    self.refused_version = version
            self.mirrored_version = version

    def _not_begun(self, status: ProcessStatus) -> None:
        """The first attempt found the process paused or ended through the mirror before its run
        could begin: the workflow takes that status, as `begin_process` would have given it."""
        if status is S.PAUSED:
            self.paused_from = S.RUNNING
        self._as_in_mirror(status)

    def _as_in_mirror(self, status: ProcessStatus) -> None:
        """The mirror already shows `status` (an activity's own write put it there, or found it
        there): the workflow follows, with nothing left for the mirror loop to write."""
        self.status = self.written_status = status
        self.version += 1
        workflow.upsert_search_attributes([STATUS_ATTRIBUTE.value_set(status.label)])

    @workflow.signal(name="wake")
    def wake(self) -> None:
        """Check the transitions now instead of at the end of the wait."""
        self.woken = True

    @workflow.query(name="state")
    def state(self) -> ProcessState:
        return ProcessState(
            process_id=self.process_id,
            status=int(self.status),
            status_label=self.status.label,
            position=self.position,
            tokens=dict(self.tokens),
            paused_from=int(self.paused_from) if self.paused_from else None,
            cancelling=self.cancelling,
            next_run_at=self.next_run_at if self.status is S.PENDING else None,
        )


class _V1Steering(_V1State):
    """Requests: signals for the CLI and UI, updates for the client."""

    def _check(self, request: Request) -> None:
        if self.plan is None and not self.status.is_terminal:
            return  # not started yet: the handler checks again once the plan is loaded
        valid = request.allowed_from(self.status) and not (self.cancelling and request is not Request.CANCEL)
        if not valid:
            raise InvalidRequest(self.process_id, self.status, request)

    def _apply(self, request: Request) -> None:
        if request is Request.PAUSE:
            self.paused_from = self.status
            self._set(S.PAUSED)
        elif request is Request.RESUME:
            target = self.paused_from or S.RUNNING
            if target is S.RUNNING and self.lock_key and self.lock_generation is None:
                target = S.DISPATCHED  # it let go of its lock key while paused: it waits for it again
            self._set(target)
            self.paused_from = None
        elif request is Request.CANCEL:
            self.cancelling = True

    async def _request(self, request: Request, *, strict: bool) -> str:
        await workflow.wait_condition(lambda: self.plan is not None or self.status.is_terminal)
        try:
            self._check(request)
        except InvalidRequest as err:
            if strict:
                raise
            workflow.logger.warning("ignored %s signal: %s", request.value, err.message)
            return self.status.label
        first_cancel = request is Request.CANCEL and not self.cancelling
        self._apply(request)
        mine = self.version
        if first_cancel:
            # A workflow cannot cancel itself; a local activity asks Temporal to, so the
            # workflow ends Cancelled (not Failed) and the activity in flight is cancelled.
            await workflow.execute_local_activity(
                "workflowable.request_cancel",
                workflow.info().workflow_id,
                start_to_close_timeout=MIRROR_TIMEOUT,
                retry_policy=MIRROR_RETRY,
            )
        if request is Request.CANCEL:
            await workflow.wait_condition(lambda: self.status.is_terminal)
        await self._mirrored()
        # A pause or resume bumped the version to `mine`; the mirror refuses it only if the
        # attempt in flight ended the process as the request came in: too late.
        refused = request is not Request.CANCEL and self.refused_version >= mine
        if refused:
            await workflow.wait_condition(lambda: self.status.is_terminal or not self.in_flight)
        if refused or (request is Request.CANCEL and self.status is not S.CANCELLED):
            if strict:
                raise InvalidRequest(self.process_id, self.status, request)
            workflow.logger.warning("%s signal came too late: the process is %s", request.value, self.status.label)
        return self.status.label

    @workflow.signal(name="pause")
    async def pause_signal(self) -> None:
        await self._request(Request.PAUSE, strict=False)

    @workflow.signal(name="resume")
    async def resume_signal(self) -> None:
        await self._request(Request.RESUME, strict=False)

    @workflow.signal(name="cancel")
    async def cancel_signal(self) -> None:
        await self._request(Request.CANCEL, strict=False)

    @workflow.update(name="pause")
    async def pause(self) -> str:
        return await self._request(Request.PAUSE, strict=True)

    @pause.validator
    def _validate_pause(self) -> None:
        self._check(Request.PAUSE)

    @workflow.update(name="resume")
    async def resume(self) -> str:
        return await self._request(Request.RESUME, strict=True)

    @resume.validator
    def _validate_resume(self) -> None:
        self._check(Request.RESUME)

    @workflow.update(name="cancel")
    async def cancel(self) -> str:
        return await self._request(Request.CANCEL, strict=True)

    @cancel.validator
    def _validate_cancel(self) -> None:
        self._check(Request.CANCEL)


class _V1Boundaries(_V1Steering):
    """What holds a process between attempts: a pause, the lock key, a swap's move."""

    async def _unpaused(self) -> None:
        """Wait while paused, without holding the lock key or a place in its queue."""
        if self.status is S.PAUSED:
            self.waits += 1
            await self._let_go_of_lock()
            await workflow.wait_condition(lambda: self.status is not S.PAUSED or self.swap_id is not None)
            self._stop_if_moving()

    async def _hold_lock(self) -> None:
        """Be Running, holding the process's lock key if it has one. While it waits for the key
        it is Dispatched (Pending -> Dispatched after a timer, or as it started); a process
        that lost its lease mid-run asks again while Running."""
        while True:
            await self._unpaused()
            if self.lock_key and self.lock_generation is None:
                if self.status is S.PENDING:
                    await self._move(S.DISPATCHED)
                    continue
                if not self.lock_wanted:
                    await self._ask_for_lock()
                self._details(f"waiting for lock key {self.lock_key!r}")
                self.waits += 1
                await workflow.wait_condition(
                    lambda: self.lock_generation is not None or self.status is S.PAUSED or self.swap_id is not None
                )
                self._stop_if_moving()
                continue
            if self.status is not S.RUNNING:
                await self._move(S.RUNNING)
                continue  # a pause may have come meanwhile
            return

    async def _ask_for_lock(self) -> None:
        assert self.plan is not None and self.lock_key is not None
        self.lock_wanted = True
        info = workflow.info()
        await workflow.execute_local_activity(
            "workflowable.request_lock",
            LockRequest(self.lock_key, info.workflow_id, info.task_queue, self.plan.lock_lease_seconds),
            start_to_close_timeout=MIRROR_TIMEOUT,
            retry_policy=MIRROR_RETRY,
        )

    async def _let_go_of_lock(self) -> None:
        """Release the key if held; leave its queue if waiting."""
        if self.lock_key is None:
            return
        if self.lock_generation is not None:
            grant, self.lock_generation = LockGrant(self.lock_key, self.lock_generation), None
            await self._signal_lock("release", grant)
        if self.lock_wanted:
            self.lock_wanted = False
            await self._signal_lock("withdraw", workflow.info().workflow_id)

    async def _signal_lock(self, signal: str, arg: object) -> None:
        assert self.lock_key is not None
        try:
            await workflow.get_external_workflow_handle(lock_workflow_id(self.lock_key)).signal(signal, arg)
        except FailureError:
            pass  # the lock workflow is gone: nothing is held there

    async def _renew_lock(self) -> None:
        """While holding the key, renew its lease every third of it."""
        assert self.plan is not None
        every = timedelta(seconds=self.plan.lock_lease_seconds / 3)
        while True:
            await workflow.wait_condition(lambda: self.lock_generation is not None)
            await workflow.sleep(every)
            if self.lock_generation is not None and self.lock_key is not None:
                await self._signal_lock("renew", LockGrant(self.lock_key, self.lock_generation))

    @workflow.signal
    async def granted(self, grant: LockGrant) -> None:
        """From the lock workflow: the key is this process's."""
        if self.lock_wanted and grant.key == self.lock_key:
            self.lock_wanted, self.lock_generation = False, grant.generation
        else:  # it stopped waiting meanwhile: hand the key straight back
            try:
                await workflow.get_external_workflow_handle(lock_workflow_id(grant.key)).signal("release", grant)
            except FailureError:
                pass

    @workflow.signal
    def lost(self, grant: LockGrant) -> None:
        """From the lock workflow: the lease ran out (this workflow did not renew in time)."""
        if grant.generation == self.lock_generation:
            self.lock_generation = None

    async def _move(self, status: ProcessStatus) -> None:
        """A move of the run loop's own: never while paused; it goes on once the mirror shows it."""
        await self._unpaused()
        self._set(status)
        await self._mirrored()

    async def _move_to_new_workflow(self) -> bool:
        """At a boundary: the mirror ends this process and creates its successor on the new
        workflow, in one local activity; this run then ends. False if the swap did not take it."""
        assert self.plan is not None and self.swap_id is not None
        swap_id, self.swap_id = self.swap_id, None
        await self._mirrored()
        await self._let_go_of_lock()
        new_id = await workflow.execute_local_activity(
            "workflowable.swap_process",
            SwapMove(swap_id, self.process_id, workflow.info().run_id),
            start_to_close_timeout=MIRROR_TIMEOUT,
            retry_policy=MIRROR_RETRY,
        )
        if new_id is None:
            workflow.logger.warning("swap %s did not move process %s; it goes on", swap_id, self.process_id)
            return False
        self.status = self.written_status = S.CANCELLED  # written by the move itself
        workflow.upsert_search_attributes([STATUS_ATTRIBUTE.value_set(self.status.label)])
        self._details(f"moved by swap {swap_id} to process {new_id}")
        return True


@workflow.defn(name=PROCESS_WORKFLOW_V1)
class ProcessWorkflowV1(_V1Boundaries):
    """Walks a process's graph: first passing transition, run its activity, repeat. Its state and
    status writes, its requests, and what holds it between attempts are its bases' (above): one
    workflow, in parts a reader can take one at a time."""

    @workflow.run
    async def run(self, input: ProcessInput) -> str:
        self.process_id = input.process_id
        mirror = asyncio.create_task(self._mirror_loop())
        renewing: asyncio.Task[None] | None = None
        try:
            if input.plan is not None:
                # The trigger that created the process gave its plan: no local activity to read
                # it; the first attempt writes the begin (Running) before it runs.
                plan, self.begins_run = input.plan, True
                self.status = self.written_status = S.RUNNING
            else:
                plan = await workflow.execute_local_activity(
                    "workflowable.begin_process",
                    ProcessInput(input.process_id),
                    result_type=ProcessPlan,
                    start_to_close_timeout=MIRROR_TIMEOUT,
                    retry_policy=MIRROR_RETRY,
                )
                self.status = self.written_status = S(plan.status)
            self.plan, self.position, self.tokens, self.step = plan, plan.position, dict(plan.tokens), plan.steps_taken
            self.lock_key = plan.lock_key
            renewing = asyncio.create_task(self._renew_lock()) if self.lock_key else None
            if self.status is S.PAUSED:  # paused through the mirror before this run began
                self.paused_from = S.RUNNING
            if not input.attributes_set:
                workflow.upsert_search_attributes(
                    [
                        PROCESS_ID_ATTRIBUTE.value_set(plan.process_id),
                        WORKFLOW_ATTRIBUTE.value_set(plan.workflow_name),
                        EVENT_ATTRIBUTE.value_set(plan.event_name),
                        STATUS_ATTRIBUTE.value_set(self.status.label),
                    ]
                )
            if not self.status.is_terminal:  # else it ended through the mirror before this run
                await self._walk_or_move(plan)
        except asyncio.CancelledError:
            # Cancelled by the `cancel` request, the web UI or `temporal workflow cancel`, unless
            # the process ended in the mirror first (its last activity's write): it stays so.
            if self.written_status is None or not self.written_status.is_terminal:
                self._set(S.CANCELLED)
                await self._mirrored()
                await workflow.wait_condition(workflow.all_handlers_finished)
                raise
        finally:
            await self._let_go_of_lock()  # however it ended
        await workflow.wait_condition(workflow.all_handlers_finished)
        mirror.cancel()
        if renewing is not None:
            renewing.cancel()
        return self.status.label

    async def _walk_or_move(self, plan: ProcessPlan) -> None:
        while True:
            try:
                await self._walk(plan)
                return
            except _Moving:
                if await self._move_to_new_workflow():
                    return

    async def _walk(self, plan: ProcessPlan) -> None:
        activities = {step.id: step for step in plan.activities}
        while True:
            self._stop_if_moving()
            await self._unpaused()
            outgoing = [t for t in plan.transitions if t.from_activity_id == self.position]
            if not outgoing:
                await self._move(S.COMPLETED)
                return
            await self._hold_lock()
            chosen = await self._choose(outgoing)
            if chosen is None:
                await self._let_go_of_lock()  # nobody else waits while this one waits
                await self._wait(timedelta(seconds=plan.retry_interval_seconds))
                continue
            await self._run_activity(activities[chosen.to_activity_id])
            if self.status.is_terminal:  # the activity's Success write completed the process,
                return  # or the process had ended in the mirror before its run could begin

    async def _choose(self, outgoing: list[TransitionStep]) -> TransitionStep | None:
        """The first transition, in ordinal order, whose conditions all pass: an unconditional
        one in first place needs no check; else the activity that just succeeded checked them,
        or (after a wait, or at the start) a local activity does."""
        checked = _to_check(outgoing)
        if not checked[0].conditions:
            return checked[0]
        precheck, self.prechecked = self.prechecked, None
        if precheck is not None and precheck[:2] == (self.position, self.waits):
            chosen_id = precheck[2]
        else:
            chosen_id = await workflow.execute_local_activity(
                "workflowable.choose_transition",
                ChooseInput(self.process_id, checked, self.tokens),
                start_to_close_timeout=MIRROR_TIMEOUT,
            )
        return next((t for t in checked if t.id == chosen_id), None)

    async def _run_activity(self, step: ActivityStep) -> None:
        """Run one step: attempts until one succeeds or the retry policy is spent."""
        assert self.plan is not None
        self.step += 1
        backoff = timedelta(seconds=self.plan.retry_backoff_seconds)
        leaving = [t for t in self.plan.transitions if t.from_activity_id == step.id]
        then_check = _to_check(leaving) if leaving and leaving[0].conditions else []
        for attempt in range(1, step.max_attempts + 1):
            await self._hold_lock()  # no new attempt starts while paused, nor without the lock
            self._details(f"running activity {step.name!r} ({step.type_name}), attempt {attempt} of {step.max_attempts}")
            self.in_flight = True
            try:
                output = await workflow.execute_activity(
                    step.type_name,
                    ActivityInput(
                        self.process_id,
                        step.id,
                        step.name,
                        self.step,
                        attempt,
                        step.parameters,
                        self.tokens,
                        then_check,
                        not leaving,
                        self.begins_run,
                    ),
                    result_type=ActivityOutput,
                    activity_id=f"step-{self.step}.{attempt}",
                    start_to_close_timeout=timedelta(seconds=step.timeout_seconds),
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    # No per-activity `summary`: the current details name the activity, and a
                    # summary is one more payload per attempt for the SDK to convert and the
                    # server to keep (docs/performance.md).
                )
            except ActivityError as err:
                self.in_flight = False
                if is_cancelled_exception(err):
                    raise asyncio.CancelledError() from err
                reason = f"activity {step.name!r} failed: {err.cause or err}"
                if isinstance(err.cause, ActivityTimeout):
                    # The worker died or hung: its attempt row is still In Progress. Close it.
                    await self._close_attempt(step, attempt, reason)
                non_retryable = isinstance(err.cause, ApplicationError) and err.cause.non_retryable
                if attempt == step.max_attempts or non_retryable:
                    self.error = reason
                    await self._move(S.FAILED)
                    raise ApplicationError(reason, type="ActivityFailed", non_retryable=True) from err
                await workflow.sleep(min(backoff * 2 ** (attempt - 1), MAX_BACKOFF))
                continue
            self.in_flight = False
            self.begins_run = False
            if output.not_begun is not None:
                self.step -= 1  # nothing ran, nothing was written
                self._not_begun(S(output.not_begun))
                return
            self.tokens.update(output.outputs)
            self.position = step.id
            self.wait_until = output.wait_until
            if output.checked:
                self.prechecked = (step.id, self.waits, output.chosen)
            if output.completed:
                self._as_in_mirror(S.COMPLETED)  # the Success write completed the process
            return

    async def _close_attempt(self, step: ActivityStep, attempt: int, error: str) -> None:
        await workflow.execute_local_activity(
            "workflowable.close_attempt",
            AttemptClose(self.process_id, step.id, workflow.info().run_id, self.step, attempt, error),
            start_to_close_timeout=MIRROR_TIMEOUT,
            retry_policy=MIRROR_RETRY,
        )

    async def _wait(self, interval: timedelta) -> None:
        """No transition passes: Pending on a durable timer (or a wake-up), then Running again."""
        now = workflow.now()
        self.next_run_at = max(now + interval, self.wait_until or now)
        self.wait_until = None
        await self._move(S.PENDING)
        self._details(f"Pending: no transition passes; checking again at {self.next_run_at.isoformat(timespec='seconds')}")
        self.woken = False
        self.waits += 1
        try:
            await workflow.wait_condition(lambda: self.woken or self.swap_id is not None, timeout=self.next_run_at - now)
        except TimeoutError:
            pass
        self._stop_if_moving()
        await self._unpaused()
        if not self.lock_key:  # else it is Running again once it holds its key (_hold_lock)
            await self._move(S.RUNNING)
