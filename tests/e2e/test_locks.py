"""Lock keys: processes that share one never run activities at the same time, wait their turn
(Dispatched) first come first served, and a dead holder blocks the key only for its lease."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import timedelta

import pytest

from tests.conftest import eventually, serving, unique
from tests.e2e.flows import TYPES, Sleep
from tests.e2e.test_control import temporal_cli
from tests.e2e.test_dispatch import run_cli
from workflowable import ProcessStatus, WorkflowDefinition, WorkflowEvent
from workflowable.workflows.messages import workflow_id_for

S = ProcessStatus
LEASE = timedelta(seconds=2)


class CustomerEvent(WorkflowEvent):
    customer: str
    seconds: float

    def workflow_process_lock_key(self) -> str | None:
        return f"customer:{self.customer}"


@pytest.fixture
async def locked_flow(client, settings, task_queue):
    """Three Sleep activities (as long as the event's `seconds`), with a worker whose lease is 2 s."""
    CustomerEvent.task_queue = task_queue
    flow = WorkflowDefinition(unique("locked"), event=CustomerEvent)
    steps = [flow.activity(name, Sleep) for name in ("one", "two", "three")]
    flow.start(steps[0])
    flow.transition(steps[0], steps[1])
    flow.transition(steps[1], steps[2])
    await client.save_workflow(flow, activate=True)
    try:
        async with serving(settings, TYPES, task_queue=task_queue, lock_lease=LEASE):
            yield
    finally:
        await client.deactivate_workflow(flow.name)


def overlaps(processes) -> list[tuple[int, int]]:
    """Pairs of processes whose attempts overlap in time."""
    attempts = sorted(((a.started_at, a.completed_at, p.id) for p in processes for a in p.attempts), key=lambda a: a[0])
    return [(x[2], y[2]) for x, y in itertools.pairwise(attempts) if x[2] != y[2] and x[1] > y[0]]


async def test_processes_sharing_a_key_run_one_at_a_time(client, locked_flow):
    created = [p for n in range(10) for p in await client.trigger_event(CustomerEvent(customer="ann", seconds=0.1))]
    assert {p.lock_key for p in created} == {"customer:ann"}
    # While the first runs, the others wait their turn, visibly Dispatched.
    await eventually(lambda: _statuses_include(client, created, {S.DISPATCHED}))
    state = await client.get_lock("customer:ann")
    assert state is not None and state.holder is not None and len(state.waiting) >= 1
    finished = await asyncio.gather(*(client.wait_for_process(p.id, timeout=120) for p in created))
    assert [p.status for p in finished] == [S.COMPLETED] * 10
    assert all(len(p.attempts) == 3 for p in finished)
    assert overlaps(finished) == []


async def _statuses_include(client, processes, wanted) -> bool:
    statuses = {(await client.get_process(p.id)).status for p in processes}
    return wanted <= statuses


async def test_processes_with_different_keys_run_side_by_side(client, locked_flow):
    seconds, count = 0.3, 10
    created = [p for n in range(count) for p in await client.trigger_event(CustomerEvent(customer=f"c{n}", seconds=seconds))]
    finished = await asyncio.gather(*(client.wait_for_process(p.id, timeout=120) for p in created))
    assert [p.status for p in finished] == [S.COMPLETED] * count
    assert overlaps(finished) != []  # they really ran at the same time (how fast is the benchmark's business)


async def test_a_terminated_holder_blocks_the_key_only_for_its_lease(client, locked_flow, settings):
    holder, = await client.trigger_event(CustomerEvent(customer="bob", seconds=60))
    await eventually(lambda: _is(client, holder.id, S.RUNNING))
    waiter, = await client.trigger_event(CustomerEvent(customer="bob", seconds=0.05))
    await asyncio.sleep(0.5)
    assert (await client.get_process(waiter.id)).status is S.DISPATCHED
    result = await asyncio.to_thread(temporal_cli, settings, "workflow", "terminate", "--workflow-id", workflow_id_for(holder.id))
    assert result.returncode == 0, result.stderr
    terminated_at = time.monotonic()
    done = await client.wait_for_process(waiter.id, timeout=30)
    assert done.status is S.COMPLETED
    assert time.monotonic() - terminated_at < LEASE.total_seconds() + 5


async def _is(client, process_id: int, status: ProcessStatus) -> bool:
    return (await client.get_process(process_id)).status is status


async def test_cancelling_or_pausing_a_waiting_process_takes_it_out_of_line(client, locked_flow, settings):
    holder, = await client.trigger_event(CustomerEvent(customer="cy", seconds=60))
    await eventually(lambda: _is(client, holder.id, S.RUNNING))
    cancelled, paused, last = [
        (await client.trigger_event(CustomerEvent(customer="cy", seconds=0.05)))[0] for _ in range(3)
    ]
    await eventually(lambda: _waiting(client, "cy", 3))

    assert (await client.cancel_process(cancelled.id)).status is S.CANCELLED
    assert (await client.pause_process(paused.id)).status is S.PAUSED
    state = await eventually(lambda: _waiting(client, "cy", 1))
    assert state.waiting == [workflow_id_for(last.id)]

    code, output = await run_cli(settings, "locks", "customer:cy")
    assert code == 0 and str(holder.id) in output and str(last.id) in output, output
    code, output = await run_cli(settings, "locks", "customer:cy", "-o", "json")
    assert code == 0 and json.loads(output) == [
        {"key": "customer:cy", "holder_process_id": holder.id, "expires_at": json.loads(output)[0]["expires_at"], "waiting_process_ids": [last.id]}
    ], output

    await client.cancel_process(holder.id)  # the next in line gets the key
    assert (await client.wait_for_process(last.id, timeout=30)).status is S.COMPLETED
    resumed = await client.resume_process(paused.id)
    assert resumed.status in (S.DISPATCHED, S.RUNNING, S.COMPLETED)
    assert (await client.wait_for_process(paused.id, timeout=30)).status is S.COMPLETED
    assert (await client.get_process(cancelled.id)).attempts == ()


async def _waiting(client, customer: str, count: int):
    state = await client.get_lock(f"customer:{customer}")
    return state if state is not None and len(state.waiting) == count else None


async def test_a_paused_holder_lets_go_of_its_key_and_waits_for_it_again(client, locked_flow):
    holder, = await client.trigger_event(CustomerEvent(customer="dee", seconds=1.0))
    await eventually(lambda: _is(client, holder.id, S.RUNNING))
    waiter, = await client.trigger_event(CustomerEvent(customer="dee", seconds=0.05))
    await client.pause_process(holder.id)  # its attempt in flight finishes, then the key goes
    assert (await client.wait_for_process(waiter.id, timeout=30)).status is S.COMPLETED
    resumed = await client.resume_process(holder.id)
    assert resumed.status in (S.DISPATCHED, S.RUNNING)
    done = await client.wait_for_process(holder.id, timeout=30)
    assert done.status is S.COMPLETED and len(done.attempts) == 3
    assert overlaps([done, await client.get_process(waiter.id)]) == []
