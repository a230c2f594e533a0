"""Processes run end to end on the real Temporal dev server, checked in SQL afterwards."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus

from tests.conftest import unique
from workflowable import (
    ActivityContext,
    ActivityType,
    Condition,
    ConditionContext,
    ConditionType,
    ProcessStatus,
    WorkflowDefinition,
    WorkflowEvent,
)
from workflowable.db.reporting_sql import ATTEMPTS_OF_PROCESS, FAILED_ATTEMPTS
from workflowable.states import AttemptStatus
from workflowable.workflows.messages import PROCESS_WORKFLOW, STATUS_ATTRIBUTE, WORKFLOW_ATTRIBUTE, workflow_id_for


class OrderEvent(WorkflowEvent):
    order_id: int
    amount: float
    customer: str


class Reserve(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("reservation", f"R-{ctx.tokens['order_id']}")


class Approve(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("approval", f"A-{ctx.tokens['reservation']}")


class Ship(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("tracking", f"T-{ctx.tokens['reservation']}")


class Limit(BaseModel):
    limit: float


class AmountAbove(ConditionType[Limit]):
    Parameters = Limit

    async def check(self, ctx: ConditionContext[Limit]) -> bool:
        return float(ctx.tokens["amount"]) > ctx.parameters.limit


TYPES = [Reserve, Approve, Ship, AmountAbove]


@pytest.fixture
async def three_step_workflow(client, task_queue):
    """reserve -> (amount > 500) approve -> ship, else reserve -> ship."""
    OrderEvent.task_queue = task_queue
    flow = WorkflowDefinition(unique("orders"), event=OrderEvent)
    reserve = flow.activity("reserve", Reserve)
    approve = flow.activity("approve", Approve)
    ship = flow.activity("ship", Ship)
    flow.start(reserve)
    flow.transition(reserve, approve, when=[Condition(AmountAbove, {"limit": 500})])
    flow.transition(reserve, ship)
    flow.transition(approve, ship)
    workflow_id = await client.save_workflow(flow, activate=True)
    yield workflow_id
    await client.deactivate_workflow(workflow_id)


async def test_twenty_events_complete_with_one_success_row_per_activity(client, run_worker, task_queue, three_step_workflow):
    events = [OrderEvent(order_id=n, amount=100 + 50 * n, customer=f"c{n % 3}") for n in range(20)]
    async with run_worker(TYPES, task_queue=task_queue):
        created = [p for e in events for p in await client.trigger_event(e)]
        finished = await asyncio.gather(*(client.wait_for_process(p.id, timeout=60) for p in created))
    assert [p.status for p in finished] == [ProcessStatus.COMPLETED] * 20
    ids = [p.id for p in created]

    async with client.engine.connect() as conn:
        statuses = (await conn.execute(sa.text(
            "SELECT workflow_process_status_id, completed_at IS NOT NULL, first_run_at <= completed_at FROM workflow_processes "
            "WHERE id = ANY(:ids)"), {"ids": ids})).all()
        assert statuses == [(7, True, True)] * 20
        attempts = (await conn.execute(sa.text(
            "SELECT l.workflow_process_id, a.name, l.workflow_process_activity_log_status_id, l.started_at <= l.completed_at "
            "FROM workflow_process_activity_logs l JOIN workflow_activities a ON a.id = l.workflow_activity_id "
            "WHERE l.workflow_process_id = ANY(:ids) ORDER BY l.workflow_process_id, l.step"), {"ids": ids})).all()
        tokens = (await conn.execute(sa.text(
            "SELECT t.workflow_process_id, t.key, t.value, a.name FROM workflow_process_tokens t "
            "LEFT JOIN workflow_activities a ON a.id = t.workflow_activity_id WHERE t.workflow_process_id = ANY(:ids)"), {"ids": ids})).all()
        seed_1 = (await conn.execute(sa.text(ATTEMPTS_OF_PROCESS.replace(":workflow_process_id", str(ids[0]))))).all()
        seed_2 = (await conn.execute(sa.text(FAILED_ATTEMPTS.replace(":failure_status_id", "3")))).all()

    for event, pid in zip(events, ids, strict=True):
        expected_path = ["reserve", "approve", "ship"] if event.amount > 500 else ["reserve", "ship"]
        mine = [a for a in attempts if a.workflow_process_id == pid]
        assert [a.name for a in mine] == expected_path
        assert all(a.workflow_process_activity_log_status_id == AttemptStatus.SUCCESS and a[3] for a in mine)
        inputs = {t.key: t.value for t in tokens if t.workflow_process_id == pid and t.name is None}
        assert inputs == {"order_id": str(event.order_id), "amount": str(event.amount), "customer": event.customer}
        outputs = {t.key: t.name for t in tokens if t.workflow_process_id == pid and t.name is not None}
        assert outputs == ({"reservation": "reserve", "approval": "approve", "tracking": "ship"} if event.amount > 500
                           else {"reservation": "reserve", "tracking": "ship"})
    assert len(seed_1) == len([a for a in attempts if a.workflow_process_id == ids[0]])
    assert all(row.workflow_process_id != ids[0] for row in seed_2)


async def test_temporal_shows_the_process_by_name(client, run_worker, task_queue, three_step_workflow):
    async with run_worker(TYPES, task_queue=task_queue):
        process, = await client.trigger_event(OrderEvent(order_id=1, amount=10, customer="c"))
        await client.wait_for_process(process.id, timeout=30)
    handle = client.temporal.get_workflow_handle(workflow_id_for(process.id))
    description = await handle.describe()
    assert description.workflow_type == PROCESS_WORKFLOW
    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert description.typed_search_attributes.get(STATUS_ATTRIBUTE) == "Completed"
    assert description.typed_search_attributes.get(WORKFLOW_ATTRIBUTE) == process.workflow_name
    activity_types = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert activity_types == ["Reserve", "Ship"]


class Boom(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        raise RuntimeError(f"boom on attempt {ctx.attempt}")


class FailingEvent(WorkflowEvent):
    n: int


async def test_an_activity_that_always_raises_fails_the_process(client, run_worker, task_queue):
    FailingEvent.task_queue = task_queue
    flow = WorkflowDefinition(unique("failing"), event=FailingEvent, max_attempts=3, retry_backoff=0.1)
    flow.start(flow.activity("boom", Boom))
    await client.save_workflow(flow, activate=True)
    async with run_worker([Boom], task_queue=task_queue):
        process, = await client.trigger_event(FailingEvent(n=1))
        process = await client.wait_for_process(process.id, timeout=60)
    assert process.status is ProcessStatus.FAILED
    assert process.completed_at is None and "boom on attempt 3" in (process.error or "")
    assert [(a.attempt, a.status, a.error) for a in process.attempts] == [
        (n, AttemptStatus.FAILURE, f"RuntimeError: boom on attempt {n}") for n in (1, 2, 3)
    ]
    assert all(a.completed_at is not None and a.started_at <= a.completed_at for a in process.attempts)
    description = await client.temporal.get_workflow_handle(workflow_id_for(process.id)).describe()
    assert description.status == WorkflowExecutionStatus.FAILED
    await client.deactivate_workflow(flow.name)  # test_replay triggers FailingEvent too


GATE = asyncio.Event()


class Noop(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        pass


class GateOpen(ConditionType):
    async def check(self, ctx: ConditionContext) -> bool:
        return GATE.is_set()


class WaitingEvent(WorkflowEvent):
    n: int


async def test_a_process_waits_pending_until_a_transition_passes(client, run_worker, task_queue):
    """No transition passes: Pending with next_run_at = now + retry_interval, on a durable timer."""
    WaitingEvent.task_queue = task_queue
    GATE.clear()
    flow = WorkflowDefinition(unique("waiting"), event=WaitingEvent, retry_interval=1)
    first = flow.activity("first", Noop)
    last = flow.activity("last", Noop)
    flow.start(first)
    flow.transition(first, last, when=[Condition(GateOpen)])
    await client.save_workflow(flow, activate=True)
    async with run_worker([Noop, GateOpen], task_queue=task_queue):
        process, = await client.trigger_event(WaitingEvent(n=1))
        for _ in range(100):
            process = await client.get_process(process.id)
            if process.status is ProcessStatus.PENDING:
                break
            await asyncio.sleep(0.05)
        assert process.status is ProcessStatus.PENDING
        assert process.position_name == "first"
        assert 0.5 < (process.next_run_at - process.attempts[0].completed_at).total_seconds() < 2.0
        await asyncio.sleep(1.5)  # at least one more check of the closed gate
        assert (await client.get_process(process.id)).status in (ProcessStatus.PENDING, ProcessStatus.RUNNING)
        GATE.set()
        process = await client.wait_for_process(process.id, timeout=30)
    assert process.status is ProcessStatus.COMPLETED
    assert [a.activity_name for a in process.attempts] == ["first", "last"]
    await client.deactivate_workflow(flow.name)  # test_replay triggers WaitingEvent too
