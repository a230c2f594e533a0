"""Types served by the worker processes of the fault suite (`workflowable worker --app tests.faults.app:TYPES`)."""

from __future__ import annotations

import asyncio

from workflowable import (
    ActivityContext,
    ActivityType,
    Condition,
    ConditionContext,
    ConditionType,
    WorkflowDefinition,
    WorkflowEvent,
)


class FaultEvent(WorkflowEvent):
    n: int
    hold: float = 0.2  #: seconds each step takes
    go: bool = True  #: False: the process waits (Pending) after its first step


class Step(ActivityType):
    """Takes `hold` seconds and notes which step of the process it was."""

    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(float(ctx.tokens["hold"]))
        ctx.set_output(f"done_{ctx.activity_name}", ctx.attempt)


class Go(ConditionType):
    async def check(self, ctx: ConditionContext) -> bool:
        return ctx.tokens["go"] == "true"


def three_steps(name: str) -> WorkflowDefinition:
    """first -> second (if go) -> third; a process that may not go waits an hour between checks."""
    flow = WorkflowDefinition(name, event=FaultEvent, retry_interval=3600)
    first, second, third = (flow.activity(step, Step) for step in ("first", "second", "third"))
    flow.start(first)
    flow.transition(first, second, when=[Condition(Go)])
    flow.transition(second, third)
    return flow


TYPES = [FaultEvent, Step, Go]
