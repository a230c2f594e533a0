from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.conftest import unique
from workflowable import ActivityContext, ActivityType, Condition, ConditionContext, ConditionType, ProcessStatus, WorkflowDefinition, WorkflowEvent


class SmokeEvent(WorkflowEvent):
    order_id: int
    amount: float


class Reserve(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("reservation", f"R-{ctx.tokens['order_id']}")


class Approve(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("approved_for", ctx.tokens["reservation"])


class Ship(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        pass


class Limit(BaseModel):
    limit: float


class AmountAbove(ConditionType[Limit]):
    Parameters = Limit

    async def check(self, ctx: ConditionContext[Limit]) -> bool:
        return float(ctx.tokens["amount"]) > ctx.parameters.limit


async def test_smoke(client, run_worker, task_queue):
    SmokeEvent.task_queue = task_queue
    flow = WorkflowDefinition(unique("smoke"), event=SmokeEvent)
    reserve = flow.activity("reserve", Reserve)
    approve = flow.activity("approve", Approve)
    ship = flow.activity("ship", Ship)
    flow.start(reserve)
    flow.transition(reserve, approve, when=[Condition(AmountAbove, {"limit": 100})])
    flow.transition(reserve, ship)
    flow.transition(approve, ship)
    await client.save_workflow(flow, activate=True)
    async with run_worker([Reserve, Approve, Ship, AmountAbove], task_queue=task_queue):
        big, = await client.trigger_event(SmokeEvent(order_id=1, amount=500))
        small, = await client.trigger_event(SmokeEvent(order_id=2, amount=5))
        big = await client.wait_for_process(big.id, timeout=30)
        small = await client.wait_for_process(small.id, timeout=30)
    assert big.status is ProcessStatus.COMPLETED, big
    assert [a.activity_name for a in big.attempts] == ["reserve", "approve", "ship"]
    assert [a.activity_name for a in small.attempts] == ["reserve", "ship"]
    assert big.token_values["approved_for"] == "R-1"
