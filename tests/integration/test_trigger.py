from __future__ import annotations

import pytest
import sqlalchemy as sa
from pydantic import Field

from tests.conftest import snapshot, unique
from workflowable import ActivityType, InvalidEventPayload, ProcessStatus, WorkflowDefinition, WorkflowEvent


class Signup(WorkflowEvent):
    user_id: int
    email: str = Field(min_length=3)
    note: str = ""


class Welcome(ActivityType):
    pass


def flow(name: str) -> WorkflowDefinition:
    definition = WorkflowDefinition(name, event=Signup)
    definition.start(definition.activity("welcome", Welcome))
    return definition


async def test_one_created_process_per_active_workflow_with_its_input_tokens(client):
    active = [await client.save_workflow(flow(unique("signup")), activate=True) for _ in range(2)]
    await client.save_workflow(flow(unique("signup-draft")))  # Draft: not triggered
    retired = unique("signup-off")
    await client.save_workflow(flow(retired), activate=True)
    await client.deactivate_workflow(retired)

    note = "x" * 5000 + " ünïcode ' ; DROP TABLE workflow_processes;--"
    processes = await client.trigger_event(Signup(user_id=7, email="a@b.c", note=note), dispatch=False)

    assert sorted(p.workflow_id for p in processes) == sorted(active)
    for process in processes:
        assert process.status is ProcessStatus.CREATED
        assert process.token_values == {"user_id": "7", "email": "a@b.c", "note": note}
        assert all(t.activity_id is None for t in process.tokens)
        assert process.queue == client.settings.task_queue
        assert process.first_run_at is None and process.completed_at is None and process.next_run_at is not None
    for wf in active:
        await client.deactivate_workflow(wf)  # keep later triggers of Signup to the workflows they create


async def test_an_invalid_payload_names_each_field_and_writes_nothing(client):
    workflow = unique("signup")
    await client.save_workflow(flow(workflow), activate=True)
    before = await snapshot(client.engine)
    with pytest.raises(InvalidEventPayload) as caught:
        await client.trigger_event(Signup(user_id="seven", email="x"))
    assert caught.value.fields == ["user_id", "email"]
    with pytest.raises(InvalidEventPayload) as caught:
        await client.trigger_event(Signup.model_construct(user_id="seven", email="a@b.c"))  # bypassed validation
    assert caught.value.fields == ["user_id"]
    with pytest.raises(InvalidEventPayload):
        await client.trigger_event({"user_id": 1})  # type: ignore[arg-type]
    assert await snapshot(client.engine) == before
    await client.deactivate_workflow(workflow)


async def test_an_event_without_active_workflows_creates_nothing(client):
    class Unbound(WorkflowEvent):
        n: int

    before = await snapshot(client.engine)
    assert await client.trigger_event(Unbound(n=1)) == []
    assert await snapshot(client.engine) == before


async def test_processes_are_matched_on_the_event_class(client):
    workflow = unique("signup")
    workflow_id = await client.save_workflow(flow(workflow), activate=True)
    async with client.engine.connect() as conn:
        row = (await conn.execute(sa.text(
            "SELECT e.name, e.class_name FROM workflows w JOIN workflow_events e ON e.id = w.workflow_event_id WHERE w.id = :w"
        ), {"w": workflow_id})).one()
    assert tuple(row) == ("Signup", f"{__name__}.Signup")
    await client.deactivate_workflow(workflow)
