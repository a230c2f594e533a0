"""The one Temporal workflow type that runs every process by interpreting its workflow's graph.

It never touches the database: the plan is loaded, conditions are checked and every status
move is written by local activities, and each activity runs as the Temporal activity named
after its type. Sandbox-safe imports only (states and messages).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from .messages import (
    EVENT_ATTRIBUTE,
    PROCESS_ID_ATTRIBUTE,
    PROCESS_WORKFLOW,
    STATUS_ATTRIBUTE,
    WORKFLOW_ATTRIBUTE,
    ActivityInput,
    ActivityOutput,
    ActivityStep,
    ChooseInput,
    ProcessInput,
    ProcessPlan,
    StatusChange,
    TransitionStep,
)
from .states import ProcessStatus

#: Mirror writes are local activities: short, retried until Postgres takes them.
MIRROR_TIMEOUT = timedelta(seconds=30)
MIRROR_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))


@workflow.defn(name=PROCESS_WORKFLOW)
class ProcessWorkflow:
    """Walks a process's graph: first passing transition, run its activity, repeat."""

    def __init__(self) -> None:
        self.plan: ProcessPlan | None = None
        self.status = ProcessStatus.DISPATCHED
        self.position: int | None = None
        self.tokens: dict[str, str] = {}
        self.step = 0

    @workflow.run
    async def run(self, input: ProcessInput) -> str:
        plan = await workflow.execute_local_activity(
            "workflowable.begin_process",
            input,
            result_type=ProcessPlan,
            start_to_close_timeout=MIRROR_TIMEOUT,
            retry_policy=MIRROR_RETRY,
        )
        self.plan, self.position, self.tokens, self.step = plan, plan.position, dict(plan.tokens), plan.steps_taken
        self._set_status_attribute(ProcessStatus.RUNNING)
        workflow.upsert_search_attributes(
            [
                PROCESS_ID_ATTRIBUTE.value_set(plan.process_id),
                WORKFLOW_ATTRIBUTE.value_set(plan.workflow_name),
                EVENT_ATTRIBUTE.value_set(plan.event_name),
            ]
        )
        activities = {step.id: step for step in plan.activities}
        while True:
            outgoing = [t for t in plan.transitions if t.from_activity_id == self.position]
            if not outgoing:
                await self._move(ProcessStatus.COMPLETED)
                return self.status.label
            chosen = await self._choose(outgoing)
            if chosen is None:
                await self._wait(timedelta(seconds=plan.retry_interval_seconds))
                continue
            await self._run_activity(activities[chosen.to_activity_id])

    async def _choose(self, outgoing: list[TransitionStep]) -> TransitionStep | None:
        """The first transition, in ordinal order, whose conditions all pass."""
        # Transitions before the first unconditional one need their conditions checked by a
        # local activity; an unconditional transition in first place needs no round trip.
        checked: list[TransitionStep] = []
        for transition in outgoing:
            checked.append(transition)
            if not transition.conditions:
                break
        if not checked[0].conditions:
            return checked[0]
        assert self.plan is not None
        chosen_id = await workflow.execute_local_activity(
            "workflowable.choose_transition",
            ChooseInput(self.plan.process_id, checked, self.tokens),
            start_to_close_timeout=MIRROR_TIMEOUT,
        )
        return next((t for t in checked if t.id == chosen_id), None)

    async def _run_activity(self, step: ActivityStep) -> None:
        assert self.plan is not None
        self.step += 1
        try:
            output = await workflow.execute_activity(
                step.type_name,
                ActivityInput(self.plan.process_id, step.id, step.name, self.step, step.parameters, self.tokens),
                result_type=ActivityOutput,
                activity_id=f"step-{self.step}",
                start_to_close_timeout=timedelta(seconds=step.timeout_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=self.plan.retry_backoff_seconds),
                    maximum_attempts=step.max_attempts,
                ),
                summary=f"{step.name} ({step.type_name})",
            )
        except ActivityError as err:
            reason = f"activity {step.name!r} failed: {err.cause or err}"
            await self._move(ProcessStatus.FAILED, error=reason)
            raise ApplicationError(reason, type="ActivityFailed", non_retryable=True) from err
        self.tokens.update(output.outputs)
        self.position = step.id

    async def _wait(self, interval: timedelta) -> None:
        """No transition passes: Pending on a durable timer, then Running again."""
        await self._move(ProcessStatus.PENDING, next_run_at=workflow.now() + interval)
        await workflow.sleep(interval)
        await self._move(ProcessStatus.RUNNING)

    async def _move(self, status: ProcessStatus, **details: object) -> None:
        assert self.plan is not None
        await workflow.execute_local_activity(
            "workflowable.set_status",
            StatusChange(self.plan.process_id, status, **details),  # type: ignore[arg-type]
            start_to_close_timeout=MIRROR_TIMEOUT,
            retry_policy=MIRROR_RETRY,
        )
        self._set_status_attribute(status)

    def _set_status_attribute(self, status: ProcessStatus) -> None:
        self.status = status
        workflow.upsert_search_attributes([STATUS_ATTRIBUTE.value_set(status.label)])
