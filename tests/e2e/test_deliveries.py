"""Events that reach waiting processes, and deadlines: against a real worker, Temporal and Postgres.

Every waiting workflow here re-checks its transitions once an hour, so a process that goes on
within the test's bounds went on because of a delivery or a deadline, not a retry interval.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
import sqlalchemy as sa
from temporalio.api.sdk.v1 import WorkflowMetadata

from tests.conftest import eventually, serving, unique
from tests.e2e.flows import TYPES, Sleep
from tests.e2e.test_cli import ROOT, WORKFLOWABLE, environment
from workflowable import Condition, ProcessStatus, TokenEquals, TokenPresent, WorkflowDefinition, WorkflowEvent
from workflowable.ops.devstack import temporal_binary
from workflowable.workflows.messages import workflow_id_for

S = ProcessStatus
QUEUE = unique("deliveries")
HOUR = 3600


class PlacedOrder(WorkflowEvent):
    order_id: str
    seconds: float = 0.0  #: how long its first activity takes


class Decided(WorkflowEvent):
    order_id: str
    decision: str


class Escalating(WorkflowEvent):
    order_id: str


@pytest.fixture(scope="module")
async def flows(client, settings):
    """`approval`: reserve, then ship once a Decided event for the order says approved (or reject
    if it says no); it listens for Decided by order_id. `deadline`: reserve, then remind after
    1 s and escalate after 2 s unless approved first."""
    for event in (PlacedOrder, Decided, Escalating):
        event.task_queue = QUEUE
    approval = WorkflowDefinition(unique("approval"), event=PlacedOrder, retry_interval=HOUR)
    reserve, ship, reject = approval.activity("reserve", Sleep), approval.activity("ship", Sleep), approval.activity("reject", Sleep)
    approval.start(reserve)
    approval.transition(reserve, ship, when=[Condition(TokenEquals, {"key": "decision", "value": "approved"})])
    approval.transition(reserve, reject, when=[Condition(TokenPresent, {"key": "decision"})])
    approval.listen(Decided, match=["order_id"])
    deadline = WorkflowDefinition(unique("deadline"), event=Escalating, retry_interval=HOUR)
    wait, escalate = deadline.activity("wait", Sleep), deadline.activity("escalate", Sleep)
    deadline.start(wait)
    deadline.transition(wait, escalate, after=2)
    for flow in (approval, deadline):
        await client.save_workflow(flow, activate=True)
    try:
        async with serving(settings, TYPES, task_queue=QUEUE):
            yield approval
    finally:
        for flow in (approval, deadline):
            await client.deactivate_workflow(flow.name)


async def waiting(client, order_id: str, *, seconds: float = 0.0) -> int:
    """A process of the approval flow, Pending for its decision."""
    (process,) = await client.trigger_event(PlacedOrder(order_id=order_id, seconds=seconds))

    async def pending() -> bool:
        return (await client.get_process(process.id)).status is S.PENDING

    await eventually(pending, timeout=30)
    return process.id


def path(process) -> list[str]:
    return [a.activity_name for a in process.attempts if a.status.label == "Success"]


async def delivery_rows(client, process_id: int) -> int:
    async with client.engine.connect() as conn:
        query = "SELECT count(*) FROM workflow_process_deliveries WHERE workflow_process_id = :id"
        return int(await conn.scalar(sa.text(query), {"id": process_id}))


async def test_a_waiting_process_goes_on_as_its_event_arrives(client, flows):
    order = unique("order")
    process_id = await waiting(client, order)
    handle = client.temporal.get_workflow_handle(workflow_id_for(process_id))
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert f"Pending: waiting for Decided with order_id={order}; checking again at" in metadata.current_details  # the web UI's words
    triggered = await client.trigger_event(Decided(order_id=order, decision="approved"))
    assert list(triggered) == [], "no workflow is bound to Decided: it starts nothing"
    (delivered,) = triggered.deliveries
    assert (delivered.process_id, delivered.seq, delivered.status, delivered.signalled) == (process_id, 1, S.PENDING, True)
    done = await client.wait_for_process(process_id, timeout=30)  # its retry interval is an hour
    assert done.status is S.COMPLETED and path(done) == ["reserve", "ship"]
    decision = [t for t in done.tokens if t.key == "decision"]
    assert [(t.value, t.delivery, t.activity_id) for t in decision] == [("approved", 1, None)], "written once, by delivery 1"
    assert [(d.seq, d.event_name) for d in done.deliveries] == [(1, "Decided")]


async def test_an_event_that_matches_nothing_changes_nothing(client, flows):
    order = unique("order")
    process_id = await waiting(client, order)
    before = await client.get_process(process_id)
    triggered = await client.trigger_event(Decided(order_id=unique("other-order"), decision="approved"))
    assert triggered.deliveries == []
    after = await client.get_process(process_id)
    assert after.status is S.PENDING and after.tokens == before.tokens and after.deliveries == ()
    await client.cancel_process(process_id)


async def test_every_matching_process_receives_it_exactly_once(client, flows):
    order = unique("order")
    first, second = await waiting(client, order), await waiting(client, order)
    triggered = await client.trigger_event(Decided(order_id=order, decision="no"))
    assert sorted(d.process_id for d in triggered.deliveries) == [first, second]
    for process_id in (first, second):
        done = await client.wait_for_process(process_id, timeout=30)
        assert done.status is S.COMPLETED and path(done) == ["reserve", "reject"]
        assert [t.value for t in done.tokens if t.key == "decision"] == ["no"]
        assert await delivery_rows(client, process_id) == 1


async def test_an_event_that_comes_during_an_activity_is_checked_after_it(client, flows):
    order = unique("order")
    (process,) = await client.trigger_event(PlacedOrder(order_id=order, seconds=2.0))

    async def reserving() -> bool:
        found = await client.get_process(process.id)
        return bool(found.attempts) and found.attempts[-1].completed_at is None

    await eventually(reserving, timeout=30)
    triggered = await client.trigger_event(Decided(order_id=order, decision="approved"))
    assert [d.process_id for d in triggered.deliveries] == [process.id]
    done = await client.wait_for_process(process.id, timeout=30)
    assert done.status is S.COMPLETED and path(done) == ["reserve", "ship"], "not lost, and not left for an hour"


async def test_a_paused_process_receives_it_and_goes_on_when_resumed(client, flows):
    order = unique("order")
    process_id = await waiting(client, order)
    await client.pause_process(process_id)
    triggered = await client.trigger_event(Decided(order_id=order, decision="approved"))
    assert [(d.process_id, d.status) for d in triggered.deliveries] == [(process_id, S.PAUSED)]
    paused = await client.get_process(process_id)
    assert paused.status is S.PAUSED and paused.token_values["decision"] == "approved"
    await client.resume_process(process_id)
    done = await client.wait_for_process(process_id, timeout=30)
    assert done.status is S.COMPLETED and path(done) == ["reserve", "ship"]


async def test_a_delivery_whose_signal_was_lost_is_read_at_the_next_check(client, flows):
    """The trigger writes the delivery and then signals; a signal that never arrives (the
    caller died between) leaves the delivery in the mirror, which the next check reads."""
    order = unique("order")
    process_id = await waiting(client, order)
    tokens = Decided(order_id=order, decision="approved").to_tokens()
    _, delivered = await client.mirror.trigger(Decided.class_path(), QUEUE, None, tokens, next_run_at=None)  # no signal
    assert [row.id for row in delivered] == [process_id]
    assert (await client.get_process(process_id)).status is S.PENDING
    await client.wake_process(process_id)  # as its retry interval ending would
    done = await client.wait_for_process(process_id, timeout=30)
    assert done.status is S.COMPLETED and path(done) == ["reserve", "ship"]


async def test_a_delivery_while_no_worker_runs_is_taken_up_when_one_comes_back(client, settings, flows):
    order = unique("order")
    queue = unique("restart")
    PlacedOrder.task_queue = Decided.task_queue = queue
    try:
        async with serving(settings, TYPES, task_queue=queue):
            process_id = await waiting(client, order)
        triggered = await client.trigger_event(Decided(order_id=order, decision="approved"))
        assert [(d.process_id, d.signalled) for d in triggered.deliveries] == [(process_id, True)], "Temporal keeps the signal"
        assert (await client.get_process(process_id)).status is S.PENDING
        async with serving(settings, TYPES, task_queue=queue):
            done = await client.wait_for_process(process_id, timeout=30)
        assert done.status is S.COMPLETED and path(done) == ["reserve", "ship"]
        assert await delivery_rows(client, process_id) == 1
    finally:
        PlacedOrder.task_queue = Decided.task_queue = QUEUE


async def test_a_deadline_takes_its_transition_when_nothing_else_passes(client, flows):
    (process,) = await client.trigger_event(Escalating(order_id=unique("order")))

    async def pending() -> bool:
        return (await client.get_process(process.id)).status is S.PENDING

    await eventually(pending, timeout=30)
    words = "\n".join((await client.explain_process(process.id)).lines())
    assert "does not pass: its deadline (2 s at this position) had not come" in words, words
    handle = client.temporal.get_workflow_handle(workflow_id_for(process.id))
    details = (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
    assert "Pending: no transition passes; a deadline passes at" in details, details
    assert "deadline: transition 'wait -> escalate' (1) passes on its own at" in words, words
    done = await client.wait_for_process(process.id, timeout=30)  # the retry interval is an hour
    assert done.status is S.COMPLETED and path(done) == ["wait", "escalate"]
    waited = done.attempts[-1].started_at - done.attempts[0].completed_at
    assert waited.total_seconds() >= 2, f"escalated after {waited}, before its deadline"


async def test_a_delivery_signalled_by_hand_is_recorded_once_and_moves_the_process(client, settings, flows):
    """`temporal workflow signal --name deliver` with the documented payload: no seq, so the
    workflow records it in the mirror first. An unknown event is refused and changes nothing."""
    order = unique("order")
    process_id = await waiting(client, order)

    def signal(payload: dict) -> None:
        result = temporal_cli(settings, "workflow", "signal", "--workflow-id", workflow_id_for(process_id), "--name", "deliver", "--input", json.dumps(payload))
        assert result.returncode == 0, result.stderr

    await asyncio.to_thread(signal, {"event": "NoSuchEvent", "tokens": {"decision": "approved"}})
    await asyncio.to_thread(signal, {"event": "Decided", "tokens": {"decision": "approved", "note": {"by": "ops"}}})
    done = await client.wait_for_process(process_id, timeout=30)
    assert done.status is S.COMPLETED and path(done) == ["reserve", "ship"]
    assert [(d.seq, d.event_name) for d in done.deliveries] == [(1, "Decided")], "the unknown event recorded nothing"
    assert {t.key: (t.value, t.delivery) for t in done.tokens if t.delivery} == {"decision": ("approved", 1), "note": ('{"by":"ops"}', 1)}


def temporal_cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(temporal_binary()), *args, "--address", settings.temporal_target], capture_output=True, text=True, timeout=60)


#: For the command line's --app: the events of this module.
APP_TYPES = [PlacedOrder, Decided, Escalating]


async def test_the_command_line_trigger_says_whom_it_delivered_to(client, settings, flows):
    order = unique("order")
    process_id = await waiting(client, order)
    data = json.dumps({"order_id": order, "decision": "approved"})
    command = [*WORKFLOWABLE, "trigger", "Decided", "--app", "tests.e2e.test_deliveries:APP_TYPES", "-d", data, "-o", "json"]
    result = await asyncio.to_thread(subprocess.run, command, env=environment(settings), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"id": process_id, "action": "delivered", "workflow_name": None, "status": "Pending", "queue": None, "delivery": 1}
    ]
    assert (await client.wait_for_process(process_id, timeout=30)).status is S.COMPLETED
    shown = await asyncio.to_thread(
        subprocess.run, [*WORKFLOWABLE, "process", "show", str(process_id), "--graph"], env=environment(settings), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "delivery 1 (Decided)" in shown.stdout and "Events delivered" in shown.stdout, shown.stdout
    lines = shown.stdout.splitlines()
    assert "✓ start -> reserve (1): always" in lines and "  reserve -> reject (2): workflowable.TokenPresent(key='decision')" in lines, lines
    assert "✓ reserve -> ship (1): workflowable.TokenEquals(key='decision', value='approved')" in lines
    assert "The process is at: ship" in lines
    drawn = await asyncio.to_thread(
        subprocess.run, [*WORKFLOWABLE, "process", "show", str(process_id), "--mermaid"], env=environment(settings), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert drawn.stdout.startswith("flowchart TD") and drawn.stdout.count("linkStyle") == 2 and "style a" in drawn.stdout, drawn.stdout


async def evaluation_rows(client, process_id: int) -> list[tuple[str, int | None, int]]:
    async with client.engine.connect() as conn:
        query = "SELECT cause, workflow_transition_id, checks FROM workflow_process_evaluations WHERE workflow_process_id = :id ORDER BY id"
        return [tuple(row) for row in await conn.execute(sa.text(query), {"id": process_id})]


async def test_explain_names_the_failing_conditions_and_why_each_step_was_taken(client, flows):
    order = unique("order")
    process_id = await waiting(client, order)
    for n in range(1, 6):  # re-checks that find the same: one row, counted
        await client.wake_process(process_id)
        await eventually(lambda n=n: _checks_counted(client, process_id, n), timeout=30)
    rows = await evaluation_rows(client, process_id)
    assert rows == [("activity succeeded", None, 1), ("woken", None, 5)], "re-checks that found the same are folded"
    words = "\n".join((await client.explain_process(process_id)).lines())
    assert "is Pending, at activity 'reserve'" in words
    assert "TokenEquals(key='decision', value='approved') says no" in words, words
    assert "TokenPresent(key='decision') says no" in words
    assert f"listens for Decided with order_id={order}" in words
    assert "Checked 6 times at this position" in words
    await client.trigger_event(Decided(order_id=order, decision="approved"))
    await client.wait_for_process(process_id, timeout=30)
    done = await client.explain_process(process_id)
    assert done.path[0].startswith("'reserve' succeeded") and "transition 'start -> reserve' (1) is always taken" in done.path[0]
    assert "transition 'reserve -> ship' (1) passed on a check after event delivered" in done.path[1], done.path
    assert not done.waiting


async def _checks_counted(client, process_id: int, count: int) -> bool:
    return any(cause == "woken" and checks == count for cause, _, checks in await evaluation_rows(client, process_id))


async def test_a_process_that_never_waits_records_its_checks_with_its_success(client, flows):
    """A check made as an activity succeeds rides in the Success statement: one row per check."""
    order = unique("order")
    (process,) = await client.trigger_event(PlacedOrder(order_id=order, seconds=1.0))
    await client.trigger_event(Decided(order_id=order, decision="approved"))  # while reserve runs
    done = await client.wait_for_process(process.id, timeout=30)
    assert path(done) == ["reserve", "ship"]
    causes = [cause for cause, _, _ in await evaluation_rows(client, process.id)]
    assert causes in (["activity succeeded", "event delivered"], ["event delivered"]), causes


async def test_the_views_count_how_often_transitions_are_taken_and_conditions_pass(client, flows):
    order = unique("order")
    process_id = await waiting(client, order)
    await client.trigger_event(Decided(order_id=order, decision="approved"))
    await client.wait_for_process(process_id, timeout=30)
    async with client.engine.connect() as conn:
        transitions = {
            row.transition_name: (row.checked, row.taken)
            for row in await conn.execute(sa.text("SELECT * FROM workflow_transition_outcomes WHERE workflow_name = :name"), {"name": flows.name})
        }
        conditions = {
            row.condition_type: (row.checked, row.passed, row.errors)
            for row in await conn.execute(sa.text("SELECT * FROM workflow_condition_outcomes WHERE workflow_name = :name"), {"name": flows.name})
        }
    assert set(transitions) == {"reserve -> ship", "reserve -> reject"}, "an unconditional transition is never checked"
    checked, taken = transitions["reserve -> ship"]
    assert 1 <= taken < checked, transitions  # it said no while the process waited, then yes
    equals_checked, equals_passed, errors = conditions["workflowable.TokenEquals"]
    assert equals_checked == checked and equals_passed == taken and errors == 0, conditions
