"""Faults injected into a running system: a worker killed, Postgres stopped, the Temporal server
restarted, a workflow terminated behind Workflowable's back. Each test owns its servers."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess

import pytest
import sqlalchemy as sa

from tests.conftest import snapshot
from tests.faults.app import FaultEvent, three_steps
from tests.faults.conftest import (
    FaultStack,
    assert_exactly_once,
    assert_mirror_equals_temporal,
    count_in,
    wait_until_all,
)
from workflowable import DatabaseUnavailable, ProcessStatus, TemporalUnavailable, Workflowable
from workflowable.db.database import CONNECT_WITHIN
from workflowable.db.models import processes
from workflowable.ops.devstack import temporal_binary
from workflowable.workflows.messages import workflow_id_for

S = ProcessStatus


async def trigger(client: Workflowable, count: int, **fields) -> list[int]:
    ids: list[int] = []
    for n in range(count):
        ids += [p.id for p in await client.trigger_event(FaultEvent(n=n, **fields))]
    return ids


async def test_a_worker_killed_mid_run_loses_and_repeats_nothing(stack: FaultStack, client: Workflowable):
    await client.save_workflow(three_steps("killed"), activate=True)
    worker = stack.start_worker()
    ids = await trigger(client, 200)
    deadline = asyncio.get_running_loop().time() + 120
    while await count_in(client, ids, S.COMPLETED) < 50:  # well into the run
        assert asyncio.get_running_loop().time() < deadline, "the worker did not get going"
        await asyncio.sleep(0.2)
    assert await count_in(client, ids, S.RUNNING) > 0  # some are mid-activity as it dies
    stack.kill(worker)
    stack.start_worker()
    await wait_until_all(client, ids, S.COMPLETED, timeout=240)
    await assert_exactly_once(client, ids, steps=3)
    await assert_mirror_equals_temporal(client, ids)
    # The kill hit attempts in flight: the workflow closed their rows when they timed out.
    cut_short = [a for p in ids for a in (await client.get_process(p)).attempts if a.status.label == "Failure"]
    assert cut_short and all("timed out" in (a.error or "").lower() or "timeout" in (a.error or "").lower() for a in cut_short), cut_short[:3]


async def test_postgres_down_for_ten_seconds_delays_but_fails_nothing(stack: FaultStack, client: Workflowable):
    await client.save_workflow(three_steps("postgres-down"), activate=True)
    stack.start_worker()
    ids = await trigger(client, 100)
    deadline = asyncio.get_running_loop().time() + 120
    while await count_in(client, ids, S.COMPLETED) < 20:
        assert asyncio.get_running_loop().time() < deadline, "the worker did not get going"
        await asyncio.sleep(0.2)
    assert await count_in(client, ids, S.COMPLETED) < len(ids)
    stack.stop_postgres()
    await asyncio.sleep(10)
    stack.start_postgres()
    await wait_until_all(client, ids, S.COMPLETED, timeout=240)  # no reconcile: the workers' writes land
    assert "mirror write failed, retrying" in stack.worker_log(0)  # activities did meet the outage
    await assert_exactly_once(client, ids, steps=3)
    await assert_mirror_equals_temporal(client, ids)


async def test_processes_survive_a_temporal_server_restart(stack: FaultStack, client: Workflowable):
    await client.save_workflow(three_steps("temporal-restart"), activate=True)
    stack.start_worker()
    ids = await trigger(client, 100, hold=0.5)
    deadline = asyncio.get_running_loop().time() + 120
    while await count_in(client, ids, S.COMPLETED) < 10:
        assert asyncio.get_running_loop().time() < deadline, "the worker did not get going"
        await asyncio.sleep(0.2)
    await stack.restart_temporal(down_for=3)
    await wait_until_all(client, ids, S.COMPLETED, timeout=240)
    await assert_exactly_once(client, ids, steps=3)
    await assert_mirror_equals_temporal(client, ids)


async def test_reconcile_marks_a_terminated_workflow_and_nothing_else(stack: FaultStack, client: Workflowable):
    await client.save_workflow(three_steps("terminated"), activate=True)
    worker = stack.start_worker()
    finished = await trigger(client, 1, hold=0)
    waiting = await trigger(client, 1, hold=0, go=False)  # Pending after its first step, workflow live
    created = [p.id for p in await client.trigger_event(FaultEvent(n=99), dispatch=False)]  # never dispatched
    stuck = await trigger(client, 1, hold=600)  # in its first activity when its worker dies
    await wait_until_all(client, finished, S.COMPLETED, timeout=60)
    await wait_until_all(client, waiting, S.PENDING, timeout=60)
    await _until_open_attempt(client, stuck[0])
    stack.kill(worker)  # the stuck attempt's row stays In Progress
    terminate = subprocess.run(
        [str(temporal_binary()), "workflow", "terminate", "--address", stack.settings.temporal_target,
         "--workflow-id", workflow_id_for(stuck[0]), "--reason", "stuck on a dead machine"],
        capture_output=True, text=True, timeout=60,
    )
    assert terminate.returncode == 0, terminate.stderr

    before = await snapshot(client.engine)
    dry = await client.reconcile(dry_run=True)
    assert [(d.process_id, d.temporal, d.repair) for d in dry.differences] == [
        (stuck[0], "TERMINATED", "mark Cancelled, close 1 attempt as abandoned")
    ]
    assert await snapshot(client.engine) == before  # a dry run changes nothing

    done = await client.reconcile()
    assert done.repaired == 1
    after = await snapshot(client.engine)
    changed = {table: [json.loads(row) for row in set(after[table]) - set(before[table])] for table in before if before[table] != after[table]}
    # one row each, of that process, and the rollup of the attempt reconcile closed as abandoned
    assert sorted(changed) == ["workflow_activity_hours", "workflow_process_activity_logs", "workflow_processes"]
    totals = {when: [sum(json.loads(row)[kind] for row in rows["workflow_activity_hours"]) for kind in ("successes", "failures")]
              for when, rows in (("before", before), ("after", after))}
    assert totals["after"] == [totals["before"][0], totals["before"][1] + 1]
    assert [row["id"] for row in changed["workflow_processes"]] == stuck
    assert [row["workflow_process_id"] for row in changed["workflow_process_activity_logs"]] == stuck
    process = await client.get_process(stuck[0])
    assert process.status is S.CANCELLED and process.error == "terminated in Temporal: stuck on a dead machine"
    assert [a.error for a in process.attempts if a.status.label != "Success"] == [
        "Abandoned: the attempt's worker stopped before closing it (closed by reconcile)"
    ]
    assert (await client.get_process(created[0])).status is S.CREATED  # the sweep's, not reconcile's
    assert (await client.get_process(waiting[0])).status is S.PENDING
    assert not (await client.reconcile(dry_run=True)).differences  # and it stays repaired


async def _until_open_attempt(client: Workflowable, process_id: int) -> None:
    for _ in range(200):
        if any(a.status.label == "In Progress" for a in (await client.get_process(process_id)).attempts):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"process {process_id} never started its attempt")


async def test_reconcile_repairs_a_lost_dispatch_and_a_vanished_workflow(stack: FaultStack, client: Workflowable):
    """No worker here: what Temporal holds stays as it is while reconcile looks."""
    from tests.e2e.test_dispatch import run_cli
    from workflowable.dispatch import start_process_workflow

    await client.save_workflow(three_steps("lost-writes"), activate=True)
    lost = (await client.trigger_event(FaultEvent(n=1), dispatch=False))[0].id
    run_id = await start_process_workflow(client.temporal, await client.mirror.dispatch_target(lost))  # the Dispatched write never made
    assert run_id is not None
    vanished = (await client.trigger_event(FaultEvent(n=2)))[0].id  # Dispatched, its workflow then deleted
    deleted = subprocess.run(
        [str(temporal_binary()), "workflow", "delete", "--address", stack.settings.temporal_target, "--workflow-id", workflow_id_for(vanished), "--yes"],
        capture_output=True, text=True, timeout=60,
    )
    assert deleted.returncode == 0, deleted.stderr
    for _ in range(100):  # deletion is asynchronous in the server
        try:
            await client.temporal.get_workflow_handle(workflow_id_for(vanished)).describe()
        except Exception:
            break
        await asyncio.sleep(0.1)

    before = await snapshot(client.engine)
    code, output = await run_cli(stack.settings, "reconcile", "--dry-run")
    assert code == 0 and "Dry run: nothing changed." in output and "2 differ from Temporal" in output, output
    assert await snapshot(client.engine) == before
    found = await client.reconcile()
    assert [(d.process_id, d.temporal, d.repair) for d in found.differences] == [
        (lost, "RUNNING", "mark Dispatched"), (vanished, "not found", "mark Failed")
    ] and found.repaired == 2
    repaired_lost, repaired_vanished = await client.get_process(lost), await client.get_process(vanished)
    assert repaired_lost.status is S.DISPATCHED and repaired_lost.dispatched_at is not None
    async with client.engine.connect() as conn:
        assert await conn.scalar(sa.select(processes.c.temporal_run_id).where(processes.c.id == lost)) == run_id
    assert repaired_vanished.status is S.FAILED and "does not exist" in (repaired_vanished.error or "")
    assert (await client.retry_process(vanished)).status is S.DISPATCHED  # Failed can run again
    assert not (await client.reconcile(dry_run=True)).differences


async def test_after_a_postgres_restart_every_public_call_works_first_time(stack: FaultStack, client: Workflowable):
    """Pooled and hot connections die with the server; each call after it must check or replace
    them, not fail once with a driver error. And a call made while Postgres is down keeps trying
    to connect for a while, then raises `DatabaseUnavailable`."""
    await client.save_workflow(three_steps("restarted"), activate=True)
    stack.start_worker()
    ran = await trigger(client, 2)  # every pool has open connections to lose
    waiting = await trigger(client, 1, go=False)
    await wait_until_all(client, ran, S.COMPLETED, timeout=60)
    await wait_until_all(client, waiting, S.PENDING, timeout=60)
    stack.stop_postgres()
    stack.start_postgres()
    (pending,) = waiting
    calls = {
        "trigger_event": lambda: client.trigger_event(FaultEvent(n=7)),
        "get_process": lambda: client.get_process(ran[0]),
        "wait_for_process": lambda: client.wait_for_process(ran[1], timeout=10),
        "wake_process": lambda: client.wake_process(pending),
        "get_live_state": lambda: client.get_live_state(pending),
        "pause_process": lambda: client.pause_process(pending),
        "resume_process": lambda: client.resume_process(pending),
        "process_runs": lambda: client.process_runs(),
        "reconcile": lambda: client.reconcile(dry_run=True),
        "clone_workflow": lambda: client.clone_workflow("restarted", "restarted-copy"),
        "activate_workflow": lambda: client.activate_workflow("restarted"),
        "register": lambda: client.register(FaultEvent),
        "list_locks": lambda: client.list_locks(),
        "cancel_process": lambda: client.cancel_process(pending),
    }
    failed = {}
    for name, call in calls.items():
        try:
            await call()
        except Exception as exc:  # every failure is reported at once
            failed[name] = repr(exc)
    assert not failed, failed
    stack.stop_postgres()
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(DatabaseUnavailable, match="the mirror's Postgres is unavailable"):
            await client.get_process(ran[0])
        assert asyncio.get_running_loop().time() - started > CONNECT_WITHIN / 2  # it kept trying first
        back = asyncio.create_task(asyncio.sleep(2))
        back.add_done_callback(lambda _: stack.start_postgres())  # Postgres returns while the call tries
        assert (await client.get_process(ran[0])).status is S.COMPLETED
    finally:
        if stack.postgres._server is None:
            stack.start_postgres()


async def test_a_trigger_while_temporal_is_down_leaves_the_process_created_for_the_sweep(stack: FaultStack, client: Workflowable):
    """The process row is written, its workflow's start is not: the caller is told which process
    waits and who starts it, and the sweep does once Temporal is back."""
    await client.save_workflow(three_steps("temporal-down"), activate=True)
    stack.start_worker()
    await wait_until_all(client, await trigger(client, 1), S.COMPLETED, timeout=60)  # the worker is up
    stack.temporal.stop()
    try:
        with pytest.raises(TemporalUnavailable, match="stays Created: the process-runs sweep or dispatch_process starts it later") as caught:
            await client.trigger_event(FaultEvent(n=1))
    finally:
        await stack.restart_temporal(down_for=0)
    found = re.search(r"workflow of process (\d+)", str(caught.value))
    assert found is not None, caught.value
    process_id = int(found.group(1))
    assert (await client.get_process(process_id)).status is S.CREATED
    assert (await client.process_runs()).dispatched >= 1
    await wait_until_all(client, [process_id], S.COMPLETED, timeout=90)
