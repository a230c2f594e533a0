"""Bad input: each gets a typed error naming what was wrong, and the database stays byte for
byte as it was (every row, and every sequence: not even an id is drawn)."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.conftest import snapshot, unique
from workflowable import (
    ActivityContext,
    ActivityType,
    AttemptStatus,
    DispatchFailed,
    InvalidArgument,
    InvalidDefinition,
    InvalidEventPayload,
    InvalidStateChange,
    InvalidSwap,
    InvalidToken,
    ProcessNotFound,
    ProcessStatus,
    TokensTooLarge,
    TokenTooLarge,
    Workflowable,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowNotFound,
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
    limited = Workflowable(settings.model_copy(update={"max_token_bytes": 1000}), client.database, client.temporal)
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


async def test_payloads_that_would_not_serialize_are_refused_naming_the_field(client, parcel_flow):
    deep: Any = "bottom"
    for _ in range(300):
        deep = {"down": deep}
    circular: dict[str, Any] = {"name": "loop"}
    circular["self"] = circular
    before = await snapshot(client.engine)
    for extra, reason in (
        (deep, "field 'extra': nested more than 100 levels deep"),
        (circular, "field 'extra'.self: contains itself"),
        ([1, [2, circular]], r"field 'extra'\[1\]\[1\].self: contains itself"),
        (b"\xff\xfe", "field 'extra': bytes that are not UTF-8"),
        ({"ok": {"\ud800key": 1}}, re.escape("field 'extra'.ok: key '\\ud800key' is not valid Unicode")),
        (["fine", "\udfff"], r"field 'extra'\[1\] is not valid Unicode"),
    ):
        with pytest.raises(InvalidToken, match=reason):
            await client.trigger_event(Consignment(weight=1, extra=extra))
    assert await snapshot(client.engine) == before
    created, = await client.trigger_event(Consignment(weight=1, extra=b"plain"), dispatch=False)  # UTF-8 bytes are text
    assert created.token_values["extra"] == "plain"  # a string is kept verbatim
    await client.cancel_process(created.id)


async def test_tokens_together_over_the_limit_are_refused_before_anything_is_written(client, parcel_flow):
    """Nine fields of 250 KiB, each under max_token_bytes, together over what a Temporal payload
    may carry: refused before the first write, not a process without a workflow."""

    class Bulky(WorkflowEvent):
        a: str
        b: str
        c: str
        d: str
        e: str
        f: str
        g: str
        h: str
        i: str

    name = unique("bulky")
    flow = WorkflowDefinition(name, event=Bulky)
    flow.start(flow.activity("weigh", Weigh))
    await client.save_workflow(flow, activate=True)
    try:
        before = await snapshot(client.engine)
        with pytest.raises(TokensTooLarge, match="WORKFLOWABLE_MAX_PROCESS_TOKENS_BYTES") as caught:
            await client.trigger_event(Bulky(**{field: "x" * 250 * 1024 for field in "abcdefghi"}))
        assert caught.value.size > caught.value.limit == 1024 * 1024
        assert await snapshot(client.engine) == before
    finally:
        await client.deactivate_workflow(name)


class Annotate(ActivityType):
    class Parameters(BaseModel):
        note: str = ""


async def test_a_workflow_whose_parameters_no_payload_could_carry_is_refused(client):
    name = unique("heavy-parameters")
    flow = WorkflowDefinition(name, event=Consignment)
    flow.start(flow.activity("note", Annotate, parameters={"note": "x" * 600 * 1024}))
    before = await snapshot(client.engine)
    with pytest.raises(InvalidDefinition, match="over the limit of 524,288"):
        await client.save_workflow(flow)
    assert await snapshot(client.engine) == before


async def test_a_start_temporal_refuses_for_good_fails_the_process_with_the_reason(client, settings, parcel_flow):
    """Limits raised past what Temporal accepts: the start is refused (its payload is over
    Temporal's blob limit), so the process is Failed with the reason, not left Created for the
    sweep to try forever, and the caller gets a typed error."""
    generous = Workflowable(
        settings.model_copy(update={"max_token_bytes": 4 * 1024 * 1024, "max_process_tokens_bytes": 8 * 1024 * 1024}),
        client.database,
        client.temporal,
    )
    with pytest.raises(DispatchFailed, match="could not be started and is now Failed") as caught:
        await generous.trigger_event(Consignment(weight=1, label="x" * (5 * 1024 * 1024 // 2)))
    failed = await client.get_process(caught.value.process_id)
    assert failed.status is ProcessStatus.FAILED and "Temporal refused to start its workflow" in (failed.error or "")
    assert failed.dispatched_at is None and failed.attempts == ()  # Failed is not swept: nothing tries it again


class Reserved(WorkflowEvent):
    task_queue: ClassVar[str | None] = "/_sys/reserved"  # a prefix Temporal keeps for itself


async def test_the_sweep_fails_a_start_temporal_refuses_for_good_and_starts_the_others(client, parcel_flow):
    """The sweep meets a refusal for good in its batch (a task queue Temporal keeps for
    itself): that process is Failed with the reason, not tried at every sweep; the others of
    the batch are dispatched."""
    flow = WorkflowDefinition(unique("reserved"), event=Reserved)
    flow.start(flow.activity("weigh", Weigh))
    await client.save_workflow(flow, activate=True)
    try:
        refused, = await client.trigger_event(Reserved(), dispatch=False)
        light, = await client.trigger_event(Consignment(weight=1), dispatch=False)
        swept = await client.process_runs()
    finally:
        await client.deactivate_workflow(flow.name)
    assert swept.failed >= 1 and swept.dispatched >= 1
    failed = await client.get_process(refused.id)
    assert failed.status is ProcessStatus.FAILED and "Temporal refused to start its workflow" in (failed.error or ""), failed.error
    assert (await client.get_process(light.id)).status not in (ProcessStatus.CREATED, ProcessStatus.FAILED)


BOGUS_IDS: list[Any] = [2**63, 10**30, -(2**63) - 1, "1", "abc", b"1", 1.5, True, None, [1]]


async def test_bogus_ids_get_a_typed_error_before_any_sql(client):
    before = await snapshot(client.engine)
    calls = [
        client.get_process, client.pause_process, client.resume_process, client.cancel_process, client.retry_process,
        client.wake_process, client.dispatch_process, client.wait_for_process, client.get_live_state,
    ]
    for bogus in BOGUS_IDS:
        expected = ProcessNotFound if isinstance(bogus, int) and not isinstance(bogus, bool) else InvalidArgument
        for call in calls:
            with pytest.raises(expected):
                await call(bogus)
        for swap_call in (client.get_swap, client.dispatch_swap, client.wait_for_swap):
            with pytest.raises(InvalidSwap if expected is ProcessNotFound else InvalidArgument):
                await swap_call(bogus)
        for workflow_call in (client.activate_workflow, client.archive_workflow):
            with pytest.raises(WorkflowNotFound if expected is ProcessNotFound or isinstance(bogus, str) else InvalidArgument):
                await workflow_call(bogus)
    with pytest.raises(WorkflowNotFound, match="without NUL"):
        await client.activate_workflow("bad\x00name")
    with pytest.raises(InvalidArgument, match="timeout"):
        await client.pause_process(1, timeout=-1)
    with pytest.raises(InvalidArgument, match="lock key"):
        await client.get_lock(7)  # type: ignore[arg-type]
    # A list by ids: an id of no process is left out; one that is not an id is refused.
    assert await client.list_processes(ids=[bogus for bogus in BOGUS_IDS if isinstance(bogus, int) and not isinstance(bogus, bool)]) == []
    for not_ids in ("12", 12, [True], [1.5], ["7"]):
        with pytest.raises(InvalidArgument, match="id"):
            await client.list_processes(ids=not_ids)  # type: ignore[arg-type]
    assert await snapshot(client.engine) == before


def test_every_public_method_of_the_client_raises_only_workflowable_errors():
    """The class decorator wraps each one, so that a method added later is covered too."""
    public = [name for name, member in vars(Workflowable).items() if not name.startswith("_") and callable(getattr(member, "__func__", member))]
    assert {"trigger_event", "get_process", "connect", "reconcile", "close"} <= set(public)
    for name in public:
        method = getattr(member := vars(Workflowable)[name], "__func__", member)
        assert hasattr(method, "__wrapped__"), f"Workflowable.{name} is not behind the error boundary"


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
        if ctx.tokens["label"] == "many":  # each under the limit, together over max_process_tokens_bytes
            for n in range(5):
                ctx.set_output(f"part{n}", "x" * 100)
        ctx.set_output("report", object())


@pytest.mark.parametrize(
    ("label", "error"),
    [
        ("big", "'report' is 101 bytes, over the limit of 100 bytes"),
        ("odd", "cannot be stored"),
        ("many", "over the limit of 400 bytes (setting WORKFLOWABLE_MAX_PROCESS_TOKENS_BYTES)"),
    ],
)
async def test_an_output_that_cannot_be_stored_fails_the_step_at_once(client, run_worker, task_queue, label, error):
    Consignment.task_queue = task_queue
    name = unique("oversized")
    flow = WorkflowDefinition(name, event=Consignment, max_attempts=3)
    flow.start(flow.activity("report", Oversized))
    await client.save_workflow(flow, activate=True)
    try:
        async with run_worker([Oversized], task_queue=task_queue, max_token_bytes=100, max_process_tokens_bytes=400):
            created, = await client.trigger_event(Consignment(weight=1, label=label))
            done = await client.wait_for_process(created.id, timeout=60)
    finally:
        Consignment.task_queue = None
        await client.deactivate_workflow(name)
    assert done.status is ProcessStatus.FAILED and error in (done.error or "")
    assert [(a.status, error in (a.error or "")) for a in done.attempts] == [(AttemptStatus.FAILURE, True)]  # no retry
    assert not [t for t in done.tokens if t.activity_id]
