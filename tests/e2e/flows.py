"""Activity types, conditions and events shared by the process-control tests."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel

from workflowable import ActivityContext, ActivityType, ConditionContext, ConditionType, WorkflowEvent


class Seconds(BaseModel):
    seconds: float = 0.0


class Sleep(ActivityType[Seconds]):
    """Sleeps for the `seconds` token if the process has one, else its `seconds` parameter."""

    Parameters = Seconds

    async def handle(self, ctx: ActivityContext[Seconds]) -> None:
        seconds = float(ctx.tokens.get("seconds", ctx.parameters.seconds))
        await asyncio.sleep(seconds)
        ctx.set_output(f"slept_{ctx.activity_name}", seconds)


class Boom(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        raise RuntimeError(f"boom on attempt {ctx.attempt}")


FLAKY_FAILS = {"on": True}


class Flaky(ActivityType):
    """Fails while FLAKY_FAILS['on'] is set."""

    async def handle(self, ctx: ActivityContext) -> None:
        if FLAKY_FAILS["on"]:
            raise RuntimeError("flaky is down")
        ctx.set_output("flaky", "up")


WAIT_UNTIL: dict[str, datetime] = {}


class AskToWait(ActivityType):
    """Asks, through its context, not to check transitions before WAIT_UNTIL['at']."""

    async def handle(self, ctx: ActivityContext) -> None:
        if "at" in WAIT_UNTIL:
            ctx.retry_transitions_at(WAIT_UNTIL["at"])


GATE = {"open": False}


class GateOpen(ConditionType):
    async def check(self, ctx: ConditionContext) -> bool:
        return GATE["open"]


TYPES = [Sleep, Boom, Flaky, AskToWait, GateOpen]


class QuickEvent(WorkflowEvent):
    n: int


class SlowEvent(WorkflowEvent):
    seconds: float


class WaitEvent(WorkflowEvent):
    n: int


class FailEvent(WorkflowEvent):
    n: int


class UnservedEvent(WorkflowEvent):
    """Its processes go to a queue no worker serves: they stay Dispatched."""

    n: int
    task_queue = "nobody-serves-this-queue"
