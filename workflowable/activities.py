"""The worker's side of a process: activity types run as Temporal activities, and the local
activities through which the workflow reads its plan, checks conditions and moves its status.

Every attempt of an activity writes its own row: In Progress when it starts, then Success (with
its output tokens and the new position, atomically) or Failure with the error.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .definitions import ActivityContext, ActivityType, Catalog, ConditionContext
from .errors import InvalidParameters, UnknownType
from .messages import ActivityInput, ActivityOutput, ChooseInput, ProcessInput, ProcessPlan, StatusChange
from .mirror import AttemptKey, Mirror


def _now() -> datetime:
    return datetime.now(UTC)


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class ProcessActivities:
    """The activities one worker registers, bound to its mirror and its catalog of types."""

    def __init__(self, mirror: Mirror, catalog: Catalog) -> None:
        self.mirror = mirror
        self.catalog = catalog

    @activity.defn(name="workflowable.begin_process")
    async def begin_process(self, input: ProcessInput) -> ProcessPlan:
        """Mark the process Running and return its graph, position and tokens."""
        await self.mirror.begin_run(input.process_id, activity.info().workflow_run_id)
        return await self.mirror.load_plan(input.process_id)

    @activity.defn(name="workflowable.set_status")
    async def set_status(self, change: StatusChange) -> bool:
        return await self.mirror.set_status(change)

    @activity.defn(name="workflowable.choose_transition")
    async def choose_transition(self, input: ChooseInput) -> int | None:
        """Id of the first transition whose conditions all pass (checked in order, stopping at a false)."""
        for transition in input.transitions:
            passed = True
            for step in transition.conditions:
                condition_type = self._known(self.catalog.condition, step.type_name)
                parameters = _parameters(condition_type, step.parameters)
                ctx = ConditionContext(process_id=input.process_id, tokens=input.tokens, parameters=parameters)
                if not await condition_type().check(ctx):
                    passed = False
                    break
            if passed:
                return transition.id
        return None

    def activity_for(self, activity_type: type[ActivityType[Any]]) -> Callable[[ActivityInput], Coroutine[Any, Any, ActivityOutput]]:
        """The Temporal activity, named after the type, that runs and logs one attempt."""
        mirror = self.mirror

        async def run(input: ActivityInput) -> ActivityOutput:
            info = activity.info()
            key = AttemptKey(input.process_id, input.activity_id, info.workflow_run_id, input.step, info.attempt)
            started_at = _now()
            await mirror.start_attempt(key, started_at)
            try:
                ctx = ActivityContext(
                    process_id=input.process_id,
                    activity_id=input.activity_id,
                    activity_name=input.activity_name,
                    attempt=info.attempt,
                    tokens=dict(input.tokens),
                    parameters=_parameters(activity_type, input.parameters),
                )
                await activity_type().handle(ctx)
            except Exception as exc:
                await mirror.fail_attempt(key, started_at, _now(), describe_error(exc))
                raise
            await mirror.succeed_attempt(key, started_at, _now(), ctx.outputs)
            return ActivityOutput(outputs=ctx.outputs)

        run.__name__ = run.__qualname__ = activity_type.type_name()
        return activity.defn(name=activity_type.type_name())(run)

    def all(self) -> list[Callable[..., Any]]:
        """Every activity to register on a worker: the local ones and one per activity type."""
        local = [self.begin_process, self.set_status, self.choose_transition]
        return local + [self.activity_for(kind) for kind in self.catalog.activities.values()]

    @staticmethod
    def _known(lookup: Callable[[str], Any], name: str) -> Any:
        try:
            return lookup(name)
        except UnknownType as exc:
            # A retry on this worker cannot fix it; the error names the missing type.
            raise ApplicationError(str(exc), type="UnknownType", non_retryable=True) from None


def _parameters(kind: Any, values: dict[str, Any]) -> Any:
    try:
        return kind.validate_parameters(values)
    except InvalidParameters as exc:
        raise ApplicationError(str(exc), type="InvalidParameters", non_retryable=True) from None

