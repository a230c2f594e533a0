"""Bad input: each gets a typed error naming what was wrong, and the database stays byte for
byte as it was (every row, and every sequence: not even an id is drawn)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ConfigDict, Field

from tests.conftest import snapshot, unique
from workflowable import (
    ActivityContext,
    ActivityType,
    AttemptStatus,
    InvalidEventPayload,
    InvalidStateChange,
    InvalidToken,
    ProcessNotFound,
    ProcessStatus,
    TokenTooLarge,
    Workflowable,
    WorkflowDefinition,
    WorkflowEvent,
)

HOSTILE_KEY = "a'); DROP TABLE workflow_processes;--"


class Consignment(WorkflowEvent):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    weight: int
    label: str = ""
    extra: Any = None
    hostile: str = Field(default="kept", alias=HOSTILE_KEY)
    größe: str = "groß ✓ 大きい"


class Weigh(ActivityType):
    pass


@pytest.fixture
async def parcel_flow(client):
    name = unique("parcel")
    flow = WorkflowDefinition(name, event=Consignment)
    flow.start(flow.activity("weigh", Weigh))
    await client.save_workflow(flow, activate=True)
    yield name
    await client.deactivate_workflow(name)


async def test_unknown_process_ids_are_refused_by_every_call(client):
    before = await snapshot(client.engine)
    missing = 2**62
    calls = [
        client.get_process, client.pause_process, client.resume_process, client.cancel_process,
        client.retry_process, client.wake_process, client.dispatch_process, client.wait_for_process,
    ]
    for call in calls:
        with pytest.raises(ProcessNotFound, match=f"no workflow process has id {missing}"):
            await call(missing)
    assert await snapshot(client.engine) == before


async def test_invalid_state_changes_change_nothing(client, parcel_flow):
    created, = await client.trigger_event(Consignment(weight=1), dispatch=False)
    before = await snapshot(client.engine)
    for refused in (client.resume_process, client.retry_process, client.wake_process):
        with pytest.raises(InvalidStateChange, match=f"process {created.id} is Created"):
            await refused(created.id)
    assert await snapshot(client.engine) == before
    await client.cancel_process(created.id)
    before = await snapshot(client.engine)
    for refused in (client.pause_process, client.resume_process, client.cancel_process, client.retry_process, client.dispatch_process):
        with pytest.raises(InvalidStateChange, match="is Cancelled"):
            await refused(created.id)
    assert await snapshot(client.engine) == before


async def test_payloads_of_the_wrong_types_name_each_field(client, parcel_flow):
    before = await snapshot(client.engine)
    with pytest.raises(InvalidEventPayload) as caught:
        Consignment(weight="heavy", label=["not", "text"])
    assert caught.value.fields == ["weight", "label"]
    with pytest.raises(InvalidEventPayload, match="weight"):
        await client.trigger_event(Consignment.model_construct(weight=None))
    with pytest.raises(InvalidEventPayload, match="unknown"):
        Consignment(weight=1, unknown=2)
    assert await snapshot(client.engine) == before


async def test_a_token_over_the_limit_is_refused_before_anything_starts(client, settings, parcel_flow):
    limited = Workflowable(settings.model_copy(update={"max_token_bytes": 1000}), client.engine, client.temporal)
    before = await snapshot(client.engine)
    with pytest.raises(TokenTooLarge) as caught:
        await limited.trigger_event(Consignment(weight=1, label="é" * 501))  # 1,002 bytes of UTF-8
    assert caught.value.key == "label" and caught.value.size == 1002 and caught.value.limit == 1000
    assert "over the limit of 1,000 bytes" in str(caught.value) and "WORKFLOWABLE_MAX_TOKEN_BYTES" in str(caught.value)
    assert await snapshot(client.engine) == before
    created, = await limited.trigger_event(Consignment(weight=1, label="é" * 500), dispatch=False)  # 1,000 bytes: allowed
    assert created.token_values["label"] == "é" * 500
    await client.cancel_process(created.id)


async def test_values_that_cannot_be_stored_are_refused(client, parcel_flow):
    before = await snapshot(client.engine)
    for extra, reason in ((object(), "cannot be stored"), (float("nan"), "Out of range float"), ({"x": float("inf")}, "Out of range float")):
        with pytest.raises(InvalidToken, match=reason):
            await client.trigger_event(Consignment(weight=1, extra=extra))
    with pytest.raises(InvalidToken, match="NUL"):
        await client.trigger_event(Consignment(weight=1, label="a\x00b"))
    with pytest.raises(InvalidToken, match="not valid Unicode"):
        await client.trigger_event(Consignment(weight=1, label="\ud800"))
    assert await snapshot(client.engine) == before


async def test_hostile_and_unicode_token_keys_are_stored_verbatim(client, parcel_flow):
    created, = await client.trigger_event(Consignment(weight=3, extra={"ключ": [1, "二"]}), dispatch=False)
    seen = (await client.get_process(created.id)).token_values
    assert seen[HOSTILE_KEY] == "kept"
    assert seen["größe"] == "groß ✓ 大きい"
    assert json.loads(seen["extra"]) == {"ключ": [1, "二"]}
    assert (await client.get_process(created.id)).status.label == "Created"  # and the table is still there
    await client.cancel_process(created.id)


class Oversized(ActivityType):
    """Writes an output token over a worker limit of 100 bytes, or one that cannot be stored."""

    async def handle(self, ctx: ActivityContext) -> None:
        if ctx.tokens["label"] == "big":
            ctx.set_output("report", "x" * 101)
        ctx.set_output("report", object())


@pytest.mark.parametrize(("label", "error"), [("big", "'report' is 101 bytes, over the limit of 100 bytes"), ("odd", "cannot be stored")])
async def test_an_output_that_cannot_be_stored_fails_the_step_at_once(client, run_worker, task_queue, label, error):
    Consignment.task_queue = task_queue
    name = unique("oversized")
    flow = WorkflowDefinition(name, event=Consignment, max_attempts=3)
    flow.start(flow.activity("report", Oversized))
    await client.save_workflow(flow, activate=True)
    try:
        async with run_worker([Oversized], task_queue=task_queue, max_token_bytes=100):
            created, = await client.trigger_event(Consignment(weight=1, label=label))
            done = await client.wait_for_process(created.id, timeout=60)
    finally:
        Consignment.task_queue = None
        await client.deactivate_workflow(name)
    assert done.status is ProcessStatus.FAILED and error in (done.error or "")
    assert [(a.status, error in (a.error or "")) for a in done.attempts] == [(AttemptStatus.FAILURE, True)]  # no retry
    assert not [t for t in done.tokens if t.activity_id]
