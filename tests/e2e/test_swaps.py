"""Workflow versions: live processes swapped onto a new workflow, each at its mapped activity."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
import sqlalchemy as sa

from tests.conftest import eventually, unique
from workflowable import (
    ActivityContext,
    ActivityType,
    Condition,
    ConditionContext,
    ConditionType,
    ProcessStatus,
    Workflowable,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowStatus,
)
from workflowable.db.models import swap_audits, workflows
from workflowable.errors import InvalidSwap, SwapInProgress
from workflowable.states import SwapStatus

S = ProcessStatus


class Parcel(WorkflowEvent):
    n: int
    go: bool = True
    hold: float = 0.0


class Step(ActivityType):
    """Takes `hold` seconds in activity b; notes which version of which step ran."""

    async def handle(self, ctx: ActivityContext) -> None:
        if ctx.activity_name == "b":
            await asyncio.sleep(float(ctx.tokens["hold"]))
        ctx.set_output(f"done_{ctx.activity_name}", ctx.process_id)


class Go(ConditionType):
    async def check(self, ctx: ConditionContext) -> bool:
        return ctx.tokens["go"] == "true"


TYPES = [Step, Go]


def version_one(name: str) -> WorkflowDefinition:
    """a -> b (only if go) -> c; a process that may not go waits an hour."""
    flow = WorkflowDefinition(name, event=Parcel, retry_interval=3600)
    a, b, c = (flow.activity(step, Step) for step in "abc")
    flow.start(a)
    flow.transition(a, b, when=[Condition(Go)])
    flow.transition(b, c)
    return flow


def version_two(name: str) -> WorkflowDefinition:
    """a -> b -> c -> d: the gate is gone and a step is added."""
    flow = WorkflowDefinition(name, event=Parcel)
    a, b, c, d = (flow.activity(step, Step) for step in "abcd")
    flow.start(a)
    flow.transition(a, b)
    flow.transition(b, c)
    flow.transition(c, d)
    return flow


async def test_fifty_live_processes_move_to_the_new_version_and_complete(client, settings, run_worker, task_queue):
    Parcel.task_queue = task_queue
    wf = Workflowable(settings.model_copy(update={"task_queue": task_queue}), client.database, client.temporal)  # the swap runs here too
    old, new = unique("parcel-v1"), unique("parcel-v2")
    await wf.save_workflow(version_one(old), activate=True)
    await wf.save_workflow(version_two(new))
    try:
        async with run_worker(TYPES, task_queue=task_queue):
            created = [p.id for n in range(10) for p in await wf.trigger_event(Parcel(n=n), dispatch=False)]
            paused_created = [p.id for n in range(3) for p in await wf.trigger_event(Parcel(n=n), dispatch=False)]
            for pid in paused_created:
                await wf.pause_process(pid)
            waiting = [p.id for n in range(20) for p in await wf.trigger_event(Parcel(n=n, go=False))]
            busy = [p.id for n in range(17) for p in await wf.trigger_event(Parcel(n=n, hold=6))]
            for pid in waiting:
                await eventually(lambda pid=pid: _is(wf, pid, S.PENDING), timeout=30)
            for pid in waiting[:5]:
                await wf.pause_process(pid)
            for pid in busy:
                await eventually(lambda pid=pid: _in_b(wf, pid), timeout=30)
            for pid in busy[:5]:  # paused during b: it finishes b, then pauses
                await wf.pause_process(pid)
            live = created + paused_created + waiting + busy
            assert len(live) == 50

            swap = await wf.create_swap(old, new)
            assert swap.status is SwapStatus.DRAFT and swap.activity_map == {"a": "a", "b": "b", "c": "c"}
            swap = await wf.dispatch_swap(swap.id)
            # While it runs (the busy ones are in b), new processes wait to be dispatched.
            await eventually(lambda: _swap_is(wf, swap.id, SwapStatus.PROCESSING), timeout=30)
            late, = await wf.trigger_event(Parcel(n=99))
            assert late.workflow_name == new and late.status is S.CREATED
            with pytest.raises(SwapInProgress):
                await wf.dispatch_process(late.id)
            swap = await wf.wait_for_swap(swap.id, timeout=120)
            assert (swap.status, swap.moved, swap.remaining) == (SwapStatus.COMPLETED, 50, 0)

            moves = await _audit(wf, swap.id)
            assert sorted(moves) == sorted(live)
            for old_id in live:
                gone = await wf.get_process(old_id)
                assert gone.status is S.CANCELLED and f"moved by swap {swap.id} to process {moves[old_id][2]}" in (gone.error or "")
            successors = {old_id: move[2] for old_id, move in moves.items()}
            for old_id in paused_created + waiting[:5] + busy[:5]:
                assert (await wf.get_process(successors[old_id])).status is S.PAUSED
                await wf.resume_process(successors[old_id])
            for old_id in paused_created:  # never dispatched before: back to Created, dispatched by hand (or the sweep)
                await wf.dispatch_process(successors[old_id])
            done = await asyncio.gather(*(wf.wait_for_process(pid, timeout=120) for pid in [*successors.values(), late.id]))
    finally:
        Parcel.task_queue = None
        await client.deactivate_workflow(new)

    assert [p.status for p in done] == [S.COMPLETED] * 51 and all(p.workflow_name == new for p in done)
    for old_id, (from_activity, to_activity, new_id) in moves.items():
        before, after = await client.get_process(old_id), await client.get_process(new_id)
        assert from_activity == before.position_name == to_activity  # mapped by name
        ran_before = [a.activity_name for a in before.attempts if a.status.label == "Success"]
        ran_after = [a.activity_name for a in after.attempts if a.status.label == "Success"]
        assert ran_before + ran_after == ["a", "b", "c", "d"], (old_id, ran_before, ran_after)  # each step once
        # Output tokens of mapped activities came along, re-attributed to the new workflow's.
        carried = {t.key for t in after.tokens if t.activity_id} - {f"done_{name}" for name in ran_after}
        assert carried == {f"done_{name}" for name in ran_before}
        assert after.token_values["n"] == before.token_values["n"]
    async with client.engine.connect() as conn:
        status = await conn.scalar(sa.select(workflows.c.workflow_status_id).where(workflows.c.name == old))
    assert status == WorkflowStatus.ARCHIVED


async def test_clone_replace_and_bad_swaps(client):
    old = unique("parcel-src")
    await client.save_workflow(version_one(old), activate=True)
    copy = unique("parcel-copy")
    copy_id = await client.clone_workflow(old, copy)
    assert copy_id
    swap = await client.create_swap(old, copy, {"b": None})
    assert swap.activity_map == {"a": "a", "b": None, "c": "c"} and swap.transfer_output_tokens
    with pytest.raises(InvalidSwap, match="has no activity 'zz'"):
        await client.create_swap(old, copy, {"zz": "a"})
    with pytest.raises(InvalidSwap, match="has no activity 'zz'"):
        await client.create_swap(old, copy, {"a": "zz"})
    with pytest.raises(InvalidSwap, match="exists already"):
        await client.clone_workflow(old, copy)
    with pytest.raises(InvalidSwap, match="timezone-aware"):
        await client.schedule_swap(swap.id, datetime(2030, 1, 1))
    with pytest.raises(InvalidSwap, match="no swap has id"):
        await client.dispatch_swap(2**62)
    with pytest.raises(InvalidSwap, match="different events"):
        await client.create_swap(old, await _other_event_workflow(client))
    await client.replace_workflow(old, copy)
    async with client.engine.connect() as conn:
        rows = dict((await conn.execute(sa.select(workflows.c.name, workflows.c.workflow_status_id).where(workflows.c.name.in_([old, copy])))).all())
    assert rows == {old: WorkflowStatus.DEACTIVATED, copy: WorkflowStatus.ACTIVE}
    await client.archive_workflow(old)
    with pytest.raises(InvalidSwap, match="is Archived"):
        await client.create_swap(copy, old)
    await client.deactivate_workflow(copy)


class Letter(WorkflowEvent):
    n: int


async def _other_event_workflow(client) -> str:
    name = unique("letter")
    flow = WorkflowDefinition(name, event=Letter)
    flow.start(flow.activity("a", Step))
    await client.save_workflow(flow)
    return name


async def _is(wf: Workflowable, pid: int, status: ProcessStatus) -> bool:
    return (await wf.get_process(pid)).status is status


async def _in_b(wf: Workflowable, pid: int) -> bool:
    process = await wf.get_process(pid)
    return any(a.activity_name == "b" and a.status.label == "In Progress" for a in process.attempts)


async def _swap_is(wf: Workflowable, swap_id: int, status: SwapStatus) -> bool:
    return (await wf.get_swap(swap_id)).status is status


async def _audit(wf: Workflowable, swap_id: int) -> dict[int, tuple[str | None, str | None, int]]:
    """from process -> (old activity name, new activity name, new process)."""
    from workflowable.db.models import activities

    old_activity, new_activity = activities.alias("old_activity"), activities.alias("new_activity")
    async with wf.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(swap_audits.c.from_workflow_process_id, old_activity.c.name, new_activity.c.name, swap_audits.c.to_workflow_process_id)
            .outerjoin(old_activity, old_activity.c.id == swap_audits.c.from_workflow_activity_id)
            .outerjoin(new_activity, new_activity.c.id == swap_audits.c.to_workflow_activity_id)
            .where(swap_audits.c.workflow_swap_id == swap_id)
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


async def test_verify_integrity_names_the_missing_token_and_exits_non_zero(client, settings):
    from tests.e2e.integrity_app import HasAddress, Invoice, Ship, Shipment
    from tests.e2e.test_dispatch import run_cli
    from workflowable.db.integrity import missing_tokens

    assert missing_tokens(Shipment, [Ship, HasAddress]) == {Ship: ("postal-address",), HasAddress: ("postal-address",)}
    assert missing_tokens(Invoice, [Ship, HasAddress]) == {}
    for event in (Shipment, Invoice):
        flow = WorkflowDefinition(unique(event.__name__.lower()), event=event)
        first, second = flow.activity("first", Ship), flow.activity("second", Ship)
        flow.start(first)
        flow.transition(first, second, when=[Condition(HasAddress)])
        await client.save_workflow(flow)
    code, output = await run_cli(settings, "verify-integrity", "--app", "tests.e2e.integrity_app:TYPES")
    flat = " ".join(output.split())
    assert code == 1, output
    assert "activity type 'Ship' needs input token 'postal-address', which event Shipment does not provide" in flat
    assert "condition type 'HasAddress' needs input token 'postal-address', which event Shipment does not provide" in flat
    assert "event Invoice" not in flat
    code, output = await run_cli(settings, "verify-integrity", "--app", "tests.e2e.integrity_app:GOOD")
    assert code == 0 and "every type gets the input tokens it needs" in output, output


async def test_the_cli_clones_replaces_and_shows_swaps(client, settings):
    from tests.e2e.test_dispatch import run_cli

    old, copy = unique("cli-v1"), unique("cli-v2")
    await client.save_workflow(version_one(old), activate=True)
    code, output = await run_cli(settings, "workflow", "clone", old, copy)
    assert code == 0 and "Draft copy" in output, output
    code, output = await run_cli(settings, "swap", "create", old, copy, "--map", "b=start", "--no-output-tokens")
    assert code == 0, output
    swap_id = int(output.split()[1].rstrip(":"))
    code, output = await run_cli(settings, "swap", "status", str(swap_id))
    assert code == 0 and "Draft" in output and "(the start)" in output and "left behind" in output, output
    code, output = await run_cli(settings, "swap", "status", str(swap_id), "-o", "json")
    shown = json.loads(output)
    assert code == 0 and (shown["id"], shown["status"], shown["activity_map"]["b"], shown["transfer_output_tokens"]) == (swap_id, "Draft", None, False), output
    code, output = await run_cli(settings, "swap", "schedule", str(swap_id), "--at", "2099-06-15T12:00:00+00:00")
    assert code == 0 and "Scheduled" in output and "scheduled 2099-06-15" in output, output
    code, output = await run_cli(settings, "swap", "schedule", str(swap_id), "--at", "2099-06-15T12:00:00+00:00")
    assert code == 1 and "is Scheduled: cannot schedule it" in output, output
    code, output = await run_cli(settings, "swap", "create", old, copy, "--map", "nope=a")
    assert code == 1 and "has no activity 'nope'" in output, output
    code, output = await run_cli(settings, "workflow", "replace", old, copy)
    assert code == 0 and f"{copy!r} is Active" in output, output
    await client.deactivate_workflow(copy)
