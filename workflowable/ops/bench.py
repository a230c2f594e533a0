"""`workflowable bench`: what the mirror and the graph cost against raw Temporal, in one run.

On one Temporal dev server and one Postgres (started here unless settings point elsewhere):
(a) N plain Temporal workflows of three trivial activities, (e) the same started eagerly (what a
careful raw user writes), (f) the same with the writes any SQL mirror of that work makes (the
floor a mirror costs here), (b) N Workflowable processes of three trivial activities joined by
transitions (one with a condition) with the full mirror, the CPU each part costs a process
(this process, the dev server, Postgres), trigger latency, the process-runs
sweep against raw `start_workflow` calls, the mirror grown (10 million attempt rows by default)
with the report and the SQL of reconcile and the sweep timed before and after and the seed's
queries on the grown log, and the worker's memory with many processes waiting.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity, workflow
from temporalio.worker import Worker

from ..client import Workflowable
from ..conditions import TokenPresent
from ..connection import database_url
from ..db.database import Database, Statements
from ..db.mirror import due_batch, due_count
from ..db.partitions import ensure_partitions
from ..db.reconcile import OPEN_ATTEMPTS, to_check
from ..db.reporting_sql import ATTEMPTS_OF_PROCESS, AVERAGE_DURATION, FAILED_ATTEMPTS
from ..definitions import ActivityContext, ActivityType, Catalog, ConditionContext, ConditionType, WorkflowEvent
from ..graph import Condition, WorkflowDefinition
from ..settings import Settings
from ..states import AttemptStatus, ProcessStatus
from ..worker import HEARTBEAT_THROTTLE, SANDBOX, build_worker
from .devstack import stop_child

# (a) the baseline: plain Temporal


@activity.defn(name="bench.noop")
async def noop(n: int) -> int:
    return n


@workflow.defn(name="BenchBaseline")
class BaselineWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        for _ in range(3):
            n = await workflow.execute_activity("bench.noop", n, result_type=int, start_to_close_timeout=timedelta(seconds=30))
        return n


# (f) the floor: (e) with the writes any SQL mirror of the same work makes, as plain statements
# on the mirror's own kind of connection: a row made before the start and marked with its run
# after it, and a row for each step: five writes, where Workflowable makes six for a process of
# three steps (the trigger, the Dispatched write, the run's begin, each step's Success). So (f) is
# what a mirror of this work costs on this machine before any of Workflowable's own code.

FLOOR = "workflowable_bench_floor"
FLOOR_TABLES = (
    f"CREATE TABLE IF NOT EXISTS {FLOOR} (id bigserial PRIMARY KEY, name text NOT NULL, run_id text, "
    "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())",
    f"CREATE TABLE IF NOT EXISTS {FLOOR}_steps (id bigserial PRIMARY KEY, floor_id bigint NOT NULL REFERENCES {FLOOR} (id), "
    "step int NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
)
FLOOR_CREATE = sa.text(f"INSERT INTO {FLOOR} (name) VALUES (:name) RETURNING id")
FLOOR_DISPATCHED = sa.text(f"UPDATE {FLOOR} SET run_id = :run_id, updated_at = now() WHERE id = :id RETURNING id")
FLOOR_STEP = sa.text(f"INSERT INTO {FLOOR}_steps (floor_id, step) VALUES (:id, :step) RETURNING id")


@asynccontextmanager
async def floor_tables(engine: AsyncEngine) -> AsyncIterator[None]:
    """(f)'s tables, dropped afterwards whatever happens."""
    async with engine.begin() as conn:
        for statement in FLOOR_TABLES:
            await conn.execute(sa.text(statement))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {FLOOR}_steps, {FLOOR}"))


class FloorActivities:
    def __init__(self, statements: Statements) -> None:
        self.statements = statements

    @activity.defn(name="bench.floor_step")
    async def step(self, row_and_step: list[int]) -> int:
        row_id, step = row_and_step
        await self.statements.scalar(FLOOR_STEP, {"id": row_id, "step": step})
        return row_id


@workflow.defn(name="BenchFloor")
class FloorWorkflow:
    @workflow.run
    async def run(self, row_id: int) -> int:
        for step in range(1, 4):
            await workflow.execute_activity("bench.floor_step", [row_id, step], result_type=int, start_to_close_timeout=timedelta(seconds=30))
        return row_id


# (b) the same work as a Workflowable process


class BenchEvent(WorkflowEvent):
    n: int


class WaitingEvent(WorkflowEvent):
    n: int


class ListeningEvent(WorkflowEvent):
    n: int


class Released(WorkflowEvent):
    """Delivered to every waiting process of its batch; its `released` token lets them go on."""

    batch: str
    released: str = "yes"


class Noop(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        pass


class Always(ConditionType):
    async def check(self, ctx: ConditionContext) -> bool:
        return True


class Never(ConditionType):
    async def check(self, ctx: ConditionContext) -> bool:
        return False


TYPES = [BenchEvent, WaitingEvent, ListeningEvent, Released, Noop, Always, Never]


def process_flow(name: str) -> WorkflowDefinition:
    """(b)'s workflow: three trivial activities in sequence, the first transition behind a condition."""
    flow = WorkflowDefinition(name, event=BenchEvent)
    first, second, third = flow.activity("first", Noop), flow.activity("second", Noop), flow.activity("third", Noop)
    flow.start(first)
    flow.transition(first, second, when=[Condition(Always)])
    flow.transition(second, third)
    return flow


#: Workflows, then processes, run before each half is measured and not counted: the first
#: ones pay for start-up (the server's caches, the worker's imports and pollers).
WARM_UP = 20


@dataclass
class Config:
    n: int = 400  #: workflows in (a) and processes in (b), for throughput and again for latency
    concurrency: int = 50  #: workflows or processes started at once
    sweep: int = 10_000  #: due processes for the sweep
    attempt_rows: int = 10_000_000  #: attempt rows the mirror grows by, for the report, maintenance and seed queries
    waiting: int = 5_000  #: processes waiting on timers while the worker's memory is read
    #: latency is measured with both halves started at this share of (a)'s throughput
    latency_load: float = 0.25
    deliveries: int = 1_000  #: waiting processes one event is delivered to


@dataclass
class Results:
    config: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def target(self, name: str, value: float, limit: float, *, at_least: bool) -> None:
        met = value >= limit if at_least else value <= limit
        self.targets[name] = {"value": round(value, 3), "limit": limit, "at_least": at_least, "met": met}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bounded(count: int, concurrency: int, one: Callable[[int], Awaitable[float]], tick: Callable[[], None]) -> tuple[float, list[float]]:
    """Run `one(i)` for i < count, `concurrency` at a time; (elapsed seconds, each one's result)."""
    limit = asyncio.Semaphore(concurrency)

    async def run(i: int) -> float:
        async with limit:
            value = await one(i)
            tick()
            return value

    started = time.perf_counter()
    results = await asyncio.gather(*(run(i) for i in range(count)))
    return time.perf_counter() - started, list(results)


async def paced(count: int, rate: float, one: Callable[[int], Awaitable[float]], tick: Callable[[], None]) -> list[float]:
    """Start `one(i)` for i < count, `rate` a second whatever the earlier ones are doing (an open
    loop), so that each result is what one takes at that load, not how long it queued."""
    started = time.perf_counter()

    async def run(i: int) -> float:
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        value = await one(i)
        tick()
        return value

    return list(await asyncio.gather(*(run(i) for i in range(count))))


@dataclass(frozen=True)
class Stack:
    """The servers a bench runs on."""

    settings: Settings
    temporal_pid: int | None  #: the dev server this run started (None: the settings' own)


@asynccontextmanager
async def servers(settings: Settings | None) -> AsyncIterator[Stack]:
    """Settings pointing at servers: the given ones, or a fresh dev stack stopped afterwards."""
    if settings is not None and settings.database_url is not None and settings.temporal_address is not None:
        from ..db.database import upgrade

        upgrade(settings.database_url.get_secret_value())
        yield Stack(settings, None)
        return
    from .devstack import TemporalDevServer, dev_stack

    with tempfile.TemporaryDirectory(prefix="workflowable-bench-") as folder:
        # A dev server on free ports and an embedded Postgres of its own: a running
        # `workflowable dev`, or a database named in the environment, is left alone.
        server = TemporalDevServer(headless=True)
        address = await server.start()
        try:
            fresh = Settings(_env_file=None, database_url=None, temporal_address=address, state_dir=Path(folder))  # type: ignore[call-arg]
            async with dev_stack(fresh, log=lambda _: None) as running:
                yield Stack(running, server.process.pid if server.process is not None else None)
        finally:
            server.stop()


Progress = Callable[[str, int], Callable[[], None]]


async def measure(settings: Settings | None, config: Config, progress: Progress) -> Results:
    results = Results(config=asdict(config))
    async with servers(settings) as running, await Workflowable.connect(running.settings) as client:
        cpu = CpuMeter(running.temporal_pid, await postmaster_pid(client.engine))
        await baseline_and_processes(client, config, results, progress, cpu)
        if config.sweep:
            await sweep_against_raw_starts(client, config, results, progress)
        if config.attempt_rows:
            await growth(client, config, results, progress)
        if config.waiting:
            await waiting_memory(client, running.settings, config, results, progress)
        if config.deliveries:
            await one_event_to_many(client, config, results, progress)
    return results


# CPU per process: on a machine whose cores the parts keep busy, throughput follows the CPU a
# process costs everything that serves it (this process, the dev server, Postgres), and that
# figure drifts less from turn to turn than a rate does.

CPU_PARTS = ("python", "temporal", "postgres")


def stat_of(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name: state, parent, ... (OSError if
    the process is gone or out of sight)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def processes_in_sight() -> dict[int, tuple[int, float]]:
    """Every process /proc shows: its parent and its user and system CPU seconds so far."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = stat_of(int(entry.name))
            except OSError:
                continue  # ended meanwhile
            found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return found


async def postmaster_pid(engine: AsyncEngine) -> int | None:
    """Postgres's postmaster, if it runs on this machine (the parent of this session's backend)."""
    async with engine.connect() as conn:
        backend = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
    try:
        parent = int(stat_of(backend)[1])
        command = Path(f"/proc/{parent}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None  # another machine's, or out of this one's sight (a container)
    return parent if "postgres" in command else None


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds of this process, the dev server the bench started and the local Postgres."""

    temporal_pid: int | None
    postmaster_pid: int | None

    def read(self) -> dict[str, float]:
        seen = processes_in_sight()  # one pass over /proc for all three

        def with_children(root: int | None) -> float:
            # Postgres's backends; the dev server's, should its binary be a wrapper
            return sum((cpu for pid, (parent, cpu) in seen.items() if root is not None and root in (pid, parent)), 0.0)

        return {"python": seen.get(os.getpid(), (0, 0.0))[1], "temporal": with_children(self.temporal_pid), "postgres": with_children(self.postmaster_pid)}


async def baseline_and_processes(client: Workflowable, config: Config, results: Results, progress: Progress, cpu: CpuMeter) -> None:
    temporal = client.temporal
    BenchEvent.task_queue = "bench-b"
    flow = process_flow(f"bench-{time.time_ns()}")
    await client.save_workflow(flow, activate=True)
    triggers: list[float] = []

    async def plain(i: int) -> float:
        started = time.perf_counter()
        await temporal.execute_workflow("BenchBaseline", i, id=f"bench-a-{i}-{time.time_ns()}", task_queue="bench-a", result_type=int)
        return time.perf_counter() - started

    async def eager(i: int) -> float:
        """What a careful raw user writes: the start hands its first task to this process's worker."""
        started = time.perf_counter()
        handle = await temporal.start_workflow(
            "BenchBaseline", i, id=f"bench-e-{i}-{time.time_ns()}", task_queue="bench-a", result_type=int, request_eager_start=True
        )
        await handle.result()
        return time.perf_counter() - started

    async def floor(i: int) -> float:
        """(e) with the writes of a mirror, as plain statements (see FLOOR)."""
        started = time.perf_counter()
        statements = client.database.statements
        row_id = await statements.scalar(FLOOR_CREATE, {"name": f"bench-f-{i}"})
        handle = await temporal.start_workflow(
            "BenchFloor", row_id, id=f"bench-f-{i}-{time.time_ns()}", task_queue="bench-a", result_type=int, request_eager_start=True
        )
        await statements.scalar(FLOOR_DISPATCHED, {"id": row_id, "run_id": handle.first_execution_run_id})
        await handle.result()
        return time.perf_counter() - started

    async def process(i: int) -> float:
        started = time.perf_counter()
        created = await client.trigger_event(BenchEvent(n=i))
        triggers.append(time.perf_counter() - started)
        await temporal.get_workflow_handle(created[0].temporal_workflow_id).result()
        return time.perf_counter() - started

    # The worker has its own connections, as `workflowable worker` has.
    worker_database = Database.open(database_url(client.settings), worker=True)
    baseline_worker = Worker(
        temporal,
        task_queue="bench-a",
        workflows=[BaselineWorkflow, FloorWorkflow],
        activities=[noop, FloorActivities(worker_database.statements).step],
        workflow_runner=SANDBOX,  # what a raw user gets by default (the process workflow does without it: process.py)
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )
    async with floor_tables(client.engine), baseline_worker, build_worker(temporal, worker_database, Catalog.of(TYPES), task_queue="bench-b"):
        for warm_up in (plain, eager, floor, process):
            await bounded(min(WARM_UP, config.n), config.concurrency, warm_up, lambda: None)
        triggers.clear()
        # The dev server slows down as workflows pile up in it (about a third from the first few
        # hundred to a few thousand), so the parts take turns, a e f b b f e a, and drift falls on all.
        half = config.n // 2
        turns = list(zip("aefbbfea", (half,) * 4 + (config.n - half,) * 4, strict=True))
        # Throughput: `concurrency` at a time, so every part keeps the machine busy.
        halves = {
            "a": (plain, progress("(a) plain Temporal", config.n)),
            "e": (eager, progress("(e) plain Temporal, eager start", config.n)),
            "f": (floor, progress("(f) (e) and a mirror's writes", config.n)),
            "b": (process, progress("(b) Workflowable", config.n)),
        }
        elapsed: dict[str, float] = dict.fromkeys("aefb", 0.0)
        saturated: dict[str, list[float]] = {part: [] for part in "aefb"}
        turn_rates: dict[str, list[float]] = {part: [] for part in "aefb"}  # to see a turn that stalled
        spent: dict[str, dict[str, float]] = {part: dict.fromkeys(CPU_PARTS, 0.0) for part in "aefb"}
        for turn, count in turns:
            one, tick = halves[turn]
            before = cpu.read()
            seconds, each = await bounded(count, config.concurrency, one, tick)
            after = cpu.read()
            for name in CPU_PARTS:
                spent[turn][name] += after[name] - before[name]
            elapsed[turn] += seconds
            saturated[turn] += each
            turn_rates[turn].append(round(count / seconds, 1))
        # Latency: started at a steady rate both halves can carry. At full load a latency is
        # mostly time in queues (with `concurrency` in flight, the mean is concurrency over
        # throughput), and how it spreads is the server's task-queue order, not a process's cost.
        rate = config.latency_load * config.n / elapsed["a"]
        halves = {
            "a": (plain, progress("(a) latency", config.n)),
            "e": (eager, progress("(e) latency", config.n)),
            "f": (floor, progress("(f) latency", config.n)),
            "b": (process, progress("(b) latency", config.n)),
        }
        triggers.clear()
        latency: dict[str, list[float]] = {part: [] for part in "aefb"}
        for turn, count in turns:
            one, tick = halves[turn]
            latency[turn] += await paced(count, rate, one, tick)
    await worker_database.close()
    await client.deactivate_workflow(flow.name)

    def ms(values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    a, e, f, b = (
        {
            "per_second": config.n / elapsed[half],
            "per_second_each_turn": turn_rates[half],
            "p50_ms": ms(latency[half], 0.5),
            "p99_ms": ms(latency[half], 0.99),
            "saturated_p50_ms": ms(saturated[half], 0.5),
            "saturated_p99_ms": ms(saturated[half], 0.99),
        }
        for half in "aefb"
    )
    results.figures["a_plain_temporal"] = a
    results.figures["e_plain_temporal_eager"] = e
    results.figures["f_eager_with_mirror_writes"] = f
    results.figures["b_workflowable"] = b
    # What the mirror's writes alone cost against raw Temporal, and what Workflowable adds to them.
    results.figures["floor"] = {
        "throughput f/e": round(elapsed["e"] / elapsed["f"], 3),
        "throughput b/f": round(elapsed["f"] / elapsed["b"], 3),
        "p50 latency f/e": round(percentile(latency["f"], 0.5) / percentile(latency["e"], 0.5), 3),
        "p50 latency b/f": round(percentile(latency["b"], 0.5) / percentile(latency["f"], 0.5), 3),
    }
    # A Postgres backend that ended during a turn takes its CPU with it; the pools keep theirs.
    cpu_ms = {part: {name: round(spent[part][name] * 1000 / config.n, 1) for name in CPU_PARTS} for part in "aefb"}
    for figures in cpu_ms.values():
        figures["total"] = round(sum(figures[name] for name in CPU_PARTS), 1)
    results.figures["cpu_ms_per_process"] = cpu_ms
    # Without the dev server's CPU (servers of the settings' own), totals would not compare.
    whole = cpu.temporal_pid is not None
    results.figures["cpu_ratio"] = {
        f"{x}/{y}": round(cpu_ms[x]["total"] / cpu_ms[y]["total"], 3) if whole and cpu_ms[y]["total"] else None for x, y in ("eb", "ef", "fb")
    }
    results.figures["latency_started_per_second"] = {"rate": rate, "share_of_a_throughput": config.latency_load}
    results.figures["trigger_to_dispatched_ms"] = {"p50": ms(triggers, 0.5), "p99": ms(triggers, 0.99)}
    results.target("throughput b/a", elapsed["a"] / elapsed["b"], 0.85, at_least=True)  # the same N in each
    results.target("p50 latency b/a", percentile(latency["b"], 0.5) / percentile(latency["a"], 0.5), 1.3, at_least=False)
    # Against what a careful raw user writes (the trigger's own start is eager too).
    results.target("throughput b/e", elapsed["e"] / elapsed["b"], 0.95, at_least=True)
    results.target("p50 latency b/e", percentile(latency["b"], 0.5) / percentile(latency["e"], 0.5), 1.1, at_least=False)


async def insert_due_processes(
    client: Workflowable, count: int, queue: str, event: type[WorkflowEvent], *, released_by: str | None = None
) -> str:
    """`count` due Created processes of a fresh Active workflow, written in one statement; with
    `released_by`, the workflow listens for `Released` and they wait for that batch's."""
    event.task_queue = queue
    flow = WorkflowDefinition(f"bench-{event.__name__}-{time.time_ns()}", event=event, retry_interval=3600)
    first, never = flow.activity("first", Noop), flow.activity("never", Noop)
    flow.start(first)
    if released_by is None:
        flow.transition(first, never, when=[Condition(Never)])
    else:
        flow.transition(first, never, when=[Condition(TokenPresent, {"key": "released"})])
        flow.listen(Released, match=["batch"])
    workflow_id = await client.save_workflow(flow, activate=True)
    async with client.engine.begin() as conn:
        created = await conn.execute(
            sa.text(
                "INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue) "
                "SELECT :workflow, :created, :queue FROM generate_series(1, :count) RETURNING id"
            ),
            {"workflow": workflow_id, "created": int(ProcessStatus.CREATED), "queue": queue, "count": count},
        )
        if released_by is not None:
            ids = [row.id for row in created]
            await conn.execute(
                sa.text("INSERT INTO workflow_process_tokens (workflow_process_id, key, value) SELECT unnest(CAST(:ids AS bigint[])), 'batch', :batch"),
                {"ids": ids, "batch": released_by},
            )
    return flow.name


async def sweep_against_raw_starts(client: Workflowable, config: Config, results: Results, progress: Progress) -> None:
    name = await insert_due_processes(client, config.sweep, "bench-nobody", BenchEvent)
    tick = progress("sweep", config.sweep)
    started = time.perf_counter()
    seen = 0

    def advance(result: Any) -> None:
        nonlocal seen
        for _ in range(result.dispatched + result.already_live - seen):
            tick()
        seen = result.dispatched + result.already_live

    swept = await client.process_runs(progress=advance)
    sweep_rate = swept.dispatched / (time.perf_counter() - started)
    await client.deactivate_workflow(name)

    temporal = client.temporal

    async def start(i: int) -> float:
        await temporal.start_workflow("BenchBaseline", i, id=f"bench-raw-{i}-{time.time_ns()}", task_queue="bench-nobody")
        return 0.0

    elapsed, _ = await bounded(config.sweep, 50, start, progress("raw start_workflow", config.sweep))
    raw_rate = config.sweep / elapsed
    results.figures["sweep"] = {"processes": swept.dispatched, "per_second": sweep_rate, "raw_starts_per_second": raw_rate}
    results.target("sweep / raw start rate", sweep_rate / raw_rate, 0.8, at_least=True)


#: Finished processes the growth phase writes per attempt row: 10 million rows come with 2 million processes.
ATTEMPTS_PER_PROCESS = 5
#: Rows written per statement while the mirror grows (each its own transaction, one progress tick).
FILL_CHUNK = 1_000_000


async def growth(client: Workflowable, config: Config, results: Results, progress: Progress) -> None:
    """The mirror grown by `attempt_rows` attempts of finished processes: the report and the
    SQL of reconcile and of the sweep timed before and after, then the seed's queries on the
    grown attempt log (100 activities, 1% failures, one attempt a second back in time)."""
    before = await maintenance_times(client)
    started = time.perf_counter()
    workflow_id, first_process, activity_ids = await fill(client, config.attempt_rows, progress)
    fill_s = time.perf_counter() - started
    after = await maintenance_times(client)
    results.figures["growth"] = {
        "attempt_rows": await _count(client),
        "processes": await _count(client, "workflow_processes"),
        "fill_s": fill_s,
        "before": before,
        "after": after,
    }
    results.target("report after growth ms", after["report (last 24 h)"], 1000, at_least=False)
    for name in MAINTENANCE:
        results.target(f"{name} after growth ms", after[name], 10, at_least=False)
    await seed_queries(client, workflow_id, first_process, activity_ids, config, results)


def _sql(statement: Any) -> str:
    return str(statement.compile(dialect=postgresql.psycopg.dialect(), compile_kwargs={"literal_binds": True}))


#: The statements of reconcile and of the sweep that read the process or attempt table.
MAINTENANCE = {
    "reconcile: processes to compare": lambda: _sql(to_check()),
    "reconcile: attempts left In Progress": lambda: _sql(OPEN_ATTEMPTS),
    "sweep: due count": lambda: _sql(due_count()),
    "sweep: next batch": lambda: _sql(due_batch(200, [])),
}


async def maintenance_times(client: Workflowable) -> dict[str, float]:
    """Milliseconds: each maintenance statement in Postgres (EXPLAIN ANALYZE's execution time,
    median of 5) and the report as `workflowable report` makes it (median of 3)."""
    times: dict[str, float] = {}
    async with client.engine.connect() as conn:
        for name, statement in MAINTENANCE.items():
            runs = []
            for _ in range(5):
                plan = (await conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement()}"))).scalar_one()
                runs.append(float((json.loads(plan) if isinstance(plan, str) else plan)[0]["Execution Time"]))
            times[name] = statistics.median(runs)
    times["report (last 24 h)"] = await _report_ms(client, datetime.now(UTC) - timedelta(hours=24))
    return times


async def _report_ms(client: Workflowable, since: datetime | None) -> float:
    took = []
    for _ in range(3):
        started = time.perf_counter()
        await client.report(since=since)
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


async def fill(client: Workflowable, rows: int, progress: Progress) -> tuple[int, int, list[int]]:
    """Write `rows` closed attempts, ATTEMPTS_PER_PROCESS to each of as many Completed processes
    of a Draft workflow of 100 activities; the g-th attempt started g seconds ago. Returns the
    workflow, its first process and its activities."""
    processes = -(-rows // ATTEMPTS_PER_PROCESS)
    tick = progress("growing the mirror", 1 + -(-rows // FILL_CHUNK))
    flow = WorkflowDefinition(f"bench-report-{time.time_ns()}", event=BenchEvent)
    steps = [flow.activity(f"a{i}", Noop) for i in range(100)]
    flow.start(steps[0])
    workflow_id = await client.save_workflow(flow)  # a Draft: it is never triggered
    async with client.engine.begin() as conn:
        activity_ids = [row[0] for row in await conn.execute(sa.text("SELECT id FROM workflow_activities WHERE workflow_id = :w ORDER BY id"), {"w": workflow_id})]
        await conn.execute(
            sa.text(
                "INSERT INTO workflow_processes (workflow_id, workflow_process_status_id, queue, completed_at) "
                "SELECT :w, :completed, 'bench', now() - ((n * :each) || ' seconds')::interval FROM generate_series(1, :n) n"
            ),
            {"w": workflow_id, "completed": int(ProcessStatus.COMPLETED), "n": processes, "each": ATTEMPTS_PER_PROCESS},
        )
        first_process = await conn.scalar(sa.text("SELECT min(id) FROM workflow_processes WHERE workflow_id = :w"), {"w": workflow_id})
    # The g-th attempt started g seconds ago: months back, which need their partitions.
    await ensure_partitions(client.engine, since=datetime.now(UTC) - timedelta(seconds=rows + 60))
    tick()
    for chunk in range(0, rows, FILL_CHUNK):
        async with client.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    """
                    INSERT INTO workflow_process_activity_logs
                        (workflow_process_id, workflow_activity_id, workflow_process_activity_log_status_id,
                         started_at, completed_at, step, attempt, temporal_run_id, from_workflow_activity_id)
                    SELECT :first + (g / :each), (:activities)[1 + g % 100], CASE WHEN g % 100 = 7 THEN :failure ELSE :success END,
                           now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval + ((g % 1000) || ' milliseconds')::interval,
                           1 + g % :each, 1, 'bench',
                           CASE WHEN g % :each > 0 THEN (:activities)[1 + (g - 1) % 100] END  -- the process's previous step, as workers write it
                    FROM generate_series(:start, :stop - 1) g
                    """
                ),
                {"first": first_process, "each": ATTEMPTS_PER_PROCESS, "activities": activity_ids, "start": chunk, "stop": min(rows, chunk + FILL_CHUNK),
                 "success": int(AttemptStatus.SUCCESS), "failure": int(AttemptStatus.FAILURE)},
            )
        tick()
    async with client.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("ANALYZE"))
    return workflow_id, first_process, activity_ids


async def seed_queries(client: Workflowable, workflow_id: int, first_process: int, activity_ids: list[int], config: Config, results: Results) -> None:
    """The seed's three queries on the grown attempt log, and the report over the last 24 hours and over all history."""
    processes = -(-config.attempt_rows // ATTEMPTS_PER_PROCESS)
    queries = {
        "1 attempts of a process": (ATTEMPTS_OF_PROCESS, {"workflow_process_id": first_process + processes // 2}),
        "2 failed attempts": (FAILED_ATTEMPTS, {"failure_status_id": 3}),
        "3 average duration of an activity": (AVERAGE_DURATION, {"activity_id": activity_ids[42]}),
    }
    figures: dict[str, Any] = {"rows": await _count(client)}
    async with client.engine.connect() as conn:
        for name, (sql, params) in queries.items():
            # In Postgres (EXPLAIN ANALYZE's execution time) and as a client sees it (rows fetched into Python).
            server, fetched, rows = [], [], 0
            for _ in range(7):
                started = time.perf_counter()
                rows = len((await conn.execute(sa.text(sql), params)).all())
                fetched.append((time.perf_counter() - started) * 1000)
                analyzed = [row[0] for row in await conn.execute(sa.text(f"EXPLAIN ANALYZE {sql}"), params)]
                server.append(float(next(line for line in analyzed if line.startswith("Execution Time")).split()[2]))
            plan = "\n".join(row[0] for row in await conn.execute(sa.text(f"EXPLAIN {sql}"), params))
            figures[name] = {
                "ms": statistics.median(server),
                "fetched_ms": statistics.median(fetched),
                "rows": rows,
                "plan": plan,
                "uses_index": "Index" in plan or "Bitmap" in plan,
            }
            results.target(f"query {name} ms", statistics.median(server), 50, at_least=False)
    # The report as `workflowable report` makes it (the last 24 hours), and over all history.
    for name, since in (("report, last 24 h", datetime.now(UTC) - timedelta(hours=24)), ("report, all history", None)):
        figures[name] = {"ms": await _report_ms(client, since)}
    results.figures["report_queries"] = figures


async def _count(client: Workflowable, table: str = "workflow_process_activity_logs") -> int:
    async with client.engine.connect() as conn:
        return int(await conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def one_event_to_many(client: Workflowable, config: Config, results: Results, progress: Progress) -> None:
    """`deliveries` processes waiting for their batch's `Released`: how long the trigger that
    delivers it to all of them takes (one statement, then the signals), and until all moved on."""
    queue, batch = "bench-deliveries", f"batch-{time.time_ns()}"
    name = await insert_due_processes(client, config.deliveries, queue, ListeningEvent, released_by=batch)
    async with build_worker(client.temporal, client.database, Catalog.of(TYPES), task_queue=queue):
        await client.process_runs()
        tick = progress("waiting for the event", config.deliveries)
        await _until_count(client, name, ProcessStatus.PENDING, config.deliveries, tick)
        started = time.perf_counter()
        triggered = await client.trigger_event(Released(batch=batch))
        trigger_s = time.perf_counter() - started
        tick = progress("moved on by it", config.deliveries)
        moved = await _until_count(client, name, ProcessStatus.COMPLETED, config.deliveries, tick)
        all_moved_s = time.perf_counter() - started
    results.figures["deliveries"] = {
        "processes": config.deliveries,
        "delivered": len(triggered.deliveries),
        "signalled": sum(d.signalled for d in triggered.deliveries),
        "trigger_ms": trigger_s * 1000,
        "all_completed_s": all_moved_s,
        "completed": moved,
    }


async def _until_count(client: Workflowable, workflow: str, status: ProcessStatus, count: int, tick: Callable[[], None]) -> int:
    """Wait (up to a minute and a tenth of a second per process) until `count` processes of the
    workflow are in `status`; how many are."""
    seen, deadline = 0, time.monotonic() + 60 + count / 10
    while seen < count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        async with client.engine.connect() as conn:
            now = int(await conn.scalar(sa.text(
                "SELECT count(*) FROM workflow_processes p JOIN workflows w ON w.id = p.workflow_id "
                "WHERE w.name = :name AND p.workflow_process_status_id = :status"), {"name": workflow, "status": int(status)}) or 0)
        for _ in range(now - seen):
            tick()
        seen = max(seen, now)
    return seen


async def waiting_memory(client: Workflowable, settings: Settings, config: Config, results: Results, progress: Progress) -> None:
    """A worker process with `waiting` processes Pending on their timers: its resident memory."""
    queue = "bench-waiting"
    name = await insert_due_processes(client, config.waiting, queue, WaitingEvent)
    env = dict(os.environ)
    env.update(
        WORKFLOWABLE_DATABASE_URL=settings.database_url.get_secret_value() if settings.database_url else "",
        WORKFLOWABLE_TEMPORAL_ADDRESS=settings.temporal_target,
        WORKFLOWABLE_TEMPORAL_NAMESPACE=settings.temporal_namespace,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "workflowable", "worker", "--app", "workflowable.ops.bench:TYPES", "--queue", queue],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await client.process_runs()
        tick = progress("processes waiting", config.waiting)
        pending = await _until_count(client, name, ProcessStatus.PENDING, config.waiting, tick)
        rss = rss_bytes(worker.pid)
    finally:
        stop_child(worker, timeout=30)
    results.figures["waiting_worker"] = {"pending": pending, "rss_mib": rss / 2**20}
    results.target("worker RSS MiB with processes waiting", rss / 2**20, 1024, at_least=False)
    if pending < config.waiting:
        results.targets["all waiting processes reached Pending"] = {"value": pending, "limit": config.waiting, "at_least": True, "met": False}
