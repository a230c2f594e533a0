"""What Postgres spends on a process's hot statements, and what the rollup's triggers and the
foreign keys take of it: the six statements of the bench's (b) process (the trigger, the
Dispatched write, the begin with the first attempt's row, and each step's Success, the first with
its record of the check), through the mirror as the client and the worker make them, PROCESSES
per turn with CONCURRENCY at once, in turns: as they are, with the rollup's triggers disabled,
and with the foreign keys of the process tables dropped. Wall time and Postgres's CPU (its
backends, from /proc) per process. On an embedded Postgres of its own, stopped afterwards.

The statements run back to back, where a real process spaces them 10 to 30 ms apart (its
workflow tasks in between), which makes each dearer (docs/performance.md): these figures are
Postgres's share without that, to compare the modes with, not a process's cost.

Run: .venv/bin/python -m tests.integration.measure_hot_path [PROCESSES] [CONCURRENCY] [ROUNDS]
     (defaults 600, 50, 4)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.integration.measuring import on_own_postgres
from workflowable.db.database import Database
from workflowable.db.mirror import AttemptKey, Mirror
from workflowable.db.saved_definitions import save_workflow, set_workflow_status
from workflowable.evaluation import Evaluation
from workflowable.ops.bench import BenchEvent, CpuMeter, bounded, postmaster_pid, process_flow
from workflowable.states import WorkflowStatus

TRIGGERS = ("workflowable_roll_up_closed", "workflowable_roll_up_inserted")
PROCESS_TABLES = ("workflow_processes", "workflow_process_activity_logs", "workflow_process_tokens", "workflow_process_evaluations")
# The constraints as declared: on the partitioned attempt log, not their copies on each partition.
FOREIGN_KEYS = """
    SELECT conrelid::regclass::text AS on_table, conname AS name, pg_get_constraintdef(oid) AS definition
    FROM pg_constraint
    WHERE contype = 'f' AND conparentid = 0 AND conrelid::regclass::text = ANY(:tables)
"""


async def rollup_off(conn: AsyncConnection, off: bool) -> None:
    for name in TRIGGERS:
        await conn.execute(sa.text(f"ALTER TABLE workflow_process_activity_logs {'DISABLE' if off else 'ENABLE'} TRIGGER {name}"))


async def foreign_keys_off(conn: AsyncConnection, off: bool, dropped: list[sa.Row]) -> None:
    if off:
        dropped[:] = (await conn.execute(sa.text(FOREIGN_KEYS), {"tables": list(PROCESS_TABLES)})).all()
        for key in dropped:
            await conn.execute(sa.text(f"ALTER TABLE {key.on_table} DROP CONSTRAINT {key.name}"))
    else:
        for key in dropped:
            await conn.execute(sa.text(f"ALTER TABLE {key.on_table} ADD CONSTRAINT {key.name} {key.definition}"))


async def measure(url: str, processes: int, concurrency: int, rounds: int) -> None:
    # Two pools, as in the bench: the caller's makes the trigger's writes, the worker's the attempts'.
    client, worker = Database.open(url), Database.open(url, worker=True)
    try:
        await measure_on(client, worker, processes, concurrency, rounds)
    finally:
        await client.close()
        await worker.close()


async def measure_on(client: Database, worker: Database, processes: int, concurrency: int, rounds: int) -> None:
    caller, attempts = Mirror(client), Mirror(worker)
    workflow_id = await save_workflow(client.engine, process_flow("hot-path"))
    await set_workflow_status(client.engine, workflow_id, WorkflowStatus.ACTIVE)
    async with client.engine.connect() as conn:
        steps = [row.id for row in await conn.execute(sa.text("SELECT id FROM workflow_activities WHERE workflow_id = :w ORDER BY id"), {"w": workflow_id})]
        chosen = await conn.scalar(sa.text("SELECT id FROM workflow_transitions WHERE from_workflow_activity_id = :a"), {"a": steps[0]})
    postmaster = await postmaster_pid(client.engine)
    assert postmaster is not None, "the embedded Postgres runs here: its postmaster must be in sight"
    cpu = CpuMeter(None, postmaster)
    event = BenchEvent.class_path()
    # The record of the first transition's check, as the worker writes it (evaluation.evaluate).
    check = Evaluation(chosen, [{"transition": chosen, "passed": True, "conditions": [{"type": "Always", "passed": True}]}])

    async def process(i: int) -> float:
        created, _ = await caller.trigger(event, "hot", None, {"n": str(i)}, next_run_at=None)
        process_id, run_id = created[0].id, f"run-{i}-{time.time_ns()}"
        await caller.mark_dispatched(process_id, run_id)
        for step, activity_id in enumerate(steps, start=1):
            key, started_at = AttemptKey(process_id, activity_id, run_id, step, 1), datetime.now(UTC)
            if step == 1:  # the run's first attempt opens its row with the begin; the others write theirs as they close
                await attempts.begin_and_start_attempt(key, started_at)
            checked = (check.chosen, check.details()) if step == 1 else None
            await attempts.succeed_attempt(key, started_at, datetime.now(UTC), {}, completes=step == len(steps), checked=checked)
        return 0.0

    dropped: list[sa.Row] = []
    modes = {
        "as they are": None,
        "rollup triggers disabled": rollup_off,
        "foreign keys dropped": lambda conn, off: foreign_keys_off(conn, off, dropped),
    }
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    await bounded(50, concurrency, process, lambda: None)  # warm up: connections, plans, caches
    for turn in range(rounds):
        for name in list(modes) if turn % 2 == 0 else list(modes)[::-1]:  # drift (tables growing) falls on all
            change = modes[name]
            if change is not None:
                async with client.engine.begin() as conn:
                    await change(conn, True)
            before, started = cpu.read(), time.perf_counter()
            await bounded(processes, concurrency, process, lambda: None)
            seconds, after = time.perf_counter() - started, cpu.read()
            figures[name].append((seconds * 1000 / processes, (after["postgres"] - before["postgres"]) * 1000 / processes))
            if change is not None:
                async with client.engine.begin() as conn:
                    await change(conn, False)
    print(f"{processes} processes per turn, {concurrency} at once, {rounds} turns each; medians (each turn's wall/Postgres ms)")
    for name, turns in figures.items():
        wall, postgres = (statistics.median(figure[n] for figure in turns) for n in (0, 1))
        each = ", ".join(f"{w:.2f}/{p:.2f}" for w, p in turns)
        print(f"  {name:26} wall {wall:5.2f} ms  Postgres CPU {postgres:5.2f} ms per process   ({each})")


def main() -> None:
    given = [int(arg) for arg in sys.argv[1:4]]
    processes, concurrency, rounds = given + [600, 50, 4][len(given) :]
    on_own_postgres(lambda url: asyncio.run(measure(url, processes, concurrency, rounds)))


if __name__ == "__main__":
    main()
