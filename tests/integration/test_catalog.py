from __future__ import annotations

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from tests.conftest import unique
from workflowable import (
    ActivityType,
    Condition,
    ConditionType,
    InvalidDefinition,
    InvalidWorkflowStatusChange,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowNotEditable,
    WorkflowNotFound,
)


class CatalogEvent(WorkflowEvent):
    key: str


class OtherEvent(WorkflowEvent):
    key: str


class Step(ActivityType):
    pass


class Level(BaseModel):
    level: int


class AtLeast(ConditionType[Level]):
    Parameters = Level


def definition(name: str, event=CatalogEvent) -> WorkflowDefinition:
    flow = WorkflowDefinition(name, event=event, priority=3, retry_interval=42, max_attempts=4)
    first = flow.activity("first", Step, description="the first step")
    second = flow.activity("second", Step, max_attempts=2, timeout=7)
    flow.start(first)
    flow.transition(first, second, when=[Condition(AtLeast, {"level": 2}), Condition(AtLeast, {"level": 5})])
    return flow


async def graph(client, workflow_id: int) -> dict:
    async with client.engine.connect() as conn:
        q = lambda sql: conn.execute(sa.text(sql), {"w": workflow_id})  # noqa: E731
        return {
            "workflow": (await q("SELECT w.name, w.retry_interval, w.workflow_status_id, w.max_attempts, p.priority "
                                 "FROM workflows w JOIN workflow_priorities p ON p.id = w.workflow_priority_id WHERE w.id = :w")).one(),
            "activities": (await q("SELECT a.name, t.name, a.max_attempts, a.timeout FROM workflow_activities a "
                                   "JOIN workflow_activity_types t ON t.id = a.workflow_activity_type_id WHERE workflow_id = :w ORDER BY a.id")).all(),
            "transitions": (await q("SELECT f.name, t.name, tr.ordinal FROM workflow_transitions tr LEFT JOIN workflow_activities f "
                                    "ON f.id = tr.from_workflow_activity_id JOIN workflow_activities t ON t.id = tr.to_workflow_activity_id "
                                    "WHERE tr.workflow_id = :w ORDER BY tr.id")).all(),
            "conditions": (await q("SELECT c.ordinal, p.key, p.value FROM workflow_conditions c JOIN workflow_transitions tr "
                                   "ON tr.id = c.workflow_transition_id JOIN workflow_condition_parameters p ON p.workflow_condition_id = c.id "
                                   "WHERE tr.workflow_id = :w ORDER BY c.ordinal")).all(),
        }


async def test_saving_writes_the_whole_graph(client):
    name = unique("catalog")
    workflow_id = await client.save_workflow(definition(name))
    saved = await graph(client, workflow_id)
    assert tuple(saved["workflow"]) == (name, 42, 1, 4, 3)
    assert [tuple(a) for a in saved["activities"]] == [("first", "Step", None, None), ("second", "Step", 2, 7.0)]
    assert [tuple(t) for t in saved["transitions"]] == [(None, "first", 1), ("first", "second", 1)]
    assert [tuple(c) for c in saved["conditions"]] == [(1, "level", "2"), (2, "level", "5")]


async def test_a_draft_is_replaced_and_an_active_workflow_is_frozen(client):
    name = unique("catalog")
    workflow_id = await client.save_workflow(definition(name))
    smaller = WorkflowDefinition(name, event=CatalogEvent)
    smaller.start(smaller.activity("only", Step))
    assert await client.save_workflow(smaller) == workflow_id
    assert [a[0] for a in (await graph(client, workflow_id))["activities"]] == ["only"]

    await client.activate_workflow(name)
    with pytest.raises(WorkflowNotEditable, match="Active"):
        await client.save_workflow(definition(name))
    assert [a[0] for a in (await graph(client, workflow_id))["activities"]] == ["only"]


async def test_the_event_of_a_workflow_cannot_change(client):
    name = unique("catalog")
    await client.save_workflow(definition(name))
    with pytest.raises(WorkflowNotEditable, match="event"):
        await client.save_workflow(definition(name, event=OtherEvent))


async def test_workflow_status_moves(client):
    name = unique("catalog")
    await client.save_workflow(definition(name))
    with pytest.raises(InvalidWorkflowStatusChange):
        await client.archive_workflow(name)  # Draft cannot be archived
    await client.activate_workflow(name)
    await client.deactivate_workflow(name)
    await client.activate_workflow(name)
    await client.deactivate_workflow(name)
    await client.archive_workflow(name)
    with pytest.raises(InvalidWorkflowStatusChange):
        await client.activate_workflow(name)
    with pytest.raises(WorkflowNotFound):
        await client.activate_workflow(unique("missing"))


async def test_registering_types_is_idempotent(client):
    await client.register(CatalogEvent, Step, AtLeast)
    await client.register(CatalogEvent, Step, AtLeast)
    async with client.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT name FROM workflow_activity_types WHERE class_name = :c"), {"c": Step.class_path()})).all()
    assert rows == [("Step",)]


async def test_two_event_classes_of_one_name_are_a_clear_error(client):
    def make() -> type[WorkflowEvent]:
        class CatalogEvent(WorkflowEvent):  # the same name as the module's, another class
            key: str

        return CatalogEvent

    await client.register(CatalogEvent)
    with pytest.raises(InvalidDefinition, match=r"event name 'CatalogEvent' of .* is taken by tests\.integration\.test_catalog\.CatalogEvent"):
        await client.register(make())
