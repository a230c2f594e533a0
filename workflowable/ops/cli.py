"""The `workflowable` command: migrate the mirror, run a worker, bring up the dev stack."""

from __future__ import annotations

import asyncio
import csv
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..boundary import translate
from ..client import LIST_LIMIT, Workflowable
from ..connection import connect_temporal, database_url
from ..db.database import Database, grant_reporting, upgrade
from ..db.drawing import SavedGraph
from ..db.explain import Explanation
from ..db.integrity import IntegrityProblem
from ..db.partitions import Partition
from ..db.reporting import Attempt, Process, ProcessSummary, Report
from ..db.retention import PruneResult
from ..db.versions import SwapInfo
from ..definitions import Catalog, WorkflowEvent
from ..dispatch import SweepResult
from ..errors import (
    DatabaseUnavailable,
    InvalidArgument,
    InvalidDefinition,
    InvalidEventPayload,
    InvalidParameters,
    InvalidStateChange,
    InvalidToken,
    ProcessNotFound,
    RequestTimeout,
    TemporalUnavailable,
    WorkflowableError,
    WorkflowNotFound,
)
from ..logs import configure_logging
from ..reconcile import ReconcileResult
from ..requests import BulkResult
from ..settings import Settings
from ..states import AttemptStatus, ProcessStatus, Request
from ..trigger import Triggered
from ..worker import build_worker
from ..workflows.locks import LockState
from ..workflows.messages import PROCESS_RUNS_SCHEDULE, process_id_of
from .checks import Check, run_checks
from .devstack import dev_stack
from .exiting import exit_now, status_of
from .report_html import render_html

if TYPE_CHECKING:
    from .bench import Results  # imported when the benchmark runs: it loads a worker's modules

app = typer.Typer(help="Event-triggered workflow processes on Temporal, mirrored to Postgres.", no_args_is_help=True)
db_app = typer.Typer(help="The mirror's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
process_app = typer.Typer(help="Steer processes: pause, resume, cancel, retry (one or many), wake, dispatch, show.", no_args_is_help=True)
app.add_typer(process_app, name="process")
schedule_app = typer.Typer(help="The Temporal Schedule that runs the process-runs sweep.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")
workflow_app = typer.Typer(help="Workflows: show one's graph; clone one into a Draft, replace one by another.", no_args_is_help=True)
app.add_typer(workflow_app, name="workflow")
swap_app = typer.Typer(help="Swaps: move the live processes of a workflow onto another of the same event.", no_args_is_help=True)
app.add_typer(swap_app, name="swap")
# Piped or logged output is not cut to 80 columns: tables stay whole and greppable.
console = Console(width=None if sys.stdout.isatty() else 200)
#: Errors go to stderr, one line each, so that a script can keep stdout for results.
#: The worker's log (what it serves, when it stops); the commands' output goes to the consoles.
log = logging.getLogger("workflowable.worker")
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


OutputOption = Annotated[
    Output,
    typer.Option("--output", "-o", help="table for people; json (an array of objects) or csv (a header, then a row per record) for scripts."),
]


def emit(records: list[dict[str, Any]], output: Output, table: Callable[[], Table], *, columns: list[str] | None = None) -> None:
    """Print records as a table, as JSON or as CSV (times in ISO 8601 with their offset,
    statuses by name, absent values as null or an empty field)."""
    records = [_plain(record) for record in records]
    if output is Output.TABLE:
        console.print(table())
    elif output is Output.JSON:
        print(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns or (list(records[0]) if records else []), extrasaction="ignore")
        writer.writeheader()
        writer.writerows({key: "" if value is None else value for key, value in record.items()} for record in records)


def _plain(value: Any) -> Any:
    """`value` as JSON holds it: statuses by name (before int: they are IntEnums), times in ISO 8601."""
    if isinstance(value, Enum):
        return value.label if hasattr(value, "label") else value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


#: The exit status of each kind of failure, so that a script can tell them apart (2 is also
#: what a command line that does not parse gives).
EXIT_CODES: list[tuple[type[WorkflowableError], int]] = [
    (ProcessNotFound, 3),
    (WorkflowNotFound, 3),
    (DatabaseUnavailable, 4),
    (TemporalUnavailable, 4),
    (RequestTimeout, 4),
    (InvalidArgument, 2),
    (InvalidEventPayload, 2),
    (InvalidToken, 2),
    (InvalidParameters, 2),
    (InvalidDefinition, 2),
    (InvalidStateChange, 5),
]


def exit_code(exc: WorkflowableError) -> int:
    """2 bad input, 3 not found, 4 a server unavailable or not answering, 5 not valid in the
    process's status, 1 anything else."""
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)


def _version(value: bool) -> None:
    if value:
        print(f"workflowable {metadata.version('workflowable')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Event-triggered workflow processes on Temporal, mirrored to Postgres."""
    configure_logging(Settings())


AppOption = Annotated[
    str | None,
    typer.Option("--app", help="'module:attribute' naming the list of types to serve (default: WORKFLOWABLE_APP)."),
]
QueueOption = Annotated[list[str] | None, typer.Option("--queue", "-q", help="Task queue to serve; repeat for several.")]


def load_types(spec: str | None) -> list[type]:
    """Import 'module:attribute' and return the list of types it names."""
    if not spec or ":" not in spec:
        raise InvalidArgument(f"--app wants 'module:attribute' naming a list of types, got {spec!r}")
    module_name, attribute = spec.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the app lives beside where it is run
    try:
        types = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"cannot load {spec!r}: {exc}") from None
    return list(types)


async def serve(settings: Settings, types: list[type], queues: list[str], *, ready: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run one worker per queue until SIGINT or SIGTERM, then shut them down cleanly."""
    catalog = Catalog.of(types)
    database = Database.open(database_url(settings), worker=True)
    temporal = await connect_temporal(settings, metrics=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lease = timedelta(seconds=settings.lock_lease)
    workers = [
        build_worker(
            temporal,
            database,
            catalog,
            task_queue=queue,
            lock_lease=lease,
            max_token_bytes=settings.max_token_bytes,
            max_process_tokens_bytes=settings.max_process_tokens_bytes,
            checks_per_run=settings.checks_per_run,
        )
        for queue in queues
    ]
    try:
        for worker in workers:
            await worker.__aenter__()
        names = ", ".join(sorted(catalog.activities)) or "no activity types"
        log.info("Worker serving %s with %s. Ctrl-C stops it.", ", ".join(queues), names)
        if settings.metrics_address:
            log.info("Prometheus metrics on http://%s/metrics", settings.metrics_address)
        if ready is not None:
            await ready()
        await stop.wait()
        log.info("Stopping: waiting for running activities to finish...")
    finally:
        for worker in reversed(workers):
            await worker.__aexit__(None, None, None)
        await database.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def fail(exc: WorkflowableError) -> NoReturn:
    errors.print(f"[red]error:[/] {exc}", soft_wrap=True, highlight=False)
    raise typer.Exit(exit_code(exc))


def _run(coroutine: Awaitable[Any]) -> Any:
    try:
        return asyncio.run(_cancelled_by_sigterm(coroutine))
    except WorkflowableError as exc:
        fail(exc)
    except asyncio.CancelledError:
        raise typer.Exit(128 + signal.SIGTERM) from None  # the status a shell gives a process SIGTERM ended


async def _cancelled_by_sigterm(coroutine: Awaitable[Any]) -> Any:
    """SIGTERM (a `timeout`, a container's stop) cancels the command as asyncio cancels it on
    Ctrl-C, so its cleanup runs and the servers it started (the benchmark's, the dev stack's) are
    stopped, not orphaned. (Raising KeyboardInterrupt from a signal handler instead interrupts
    whatever frame runs, and a Temporal worker's shutdown then hangs.)"""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)  # type: ignore[union-attr]
    try:
        return await coroutine
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _with_client(use: Callable[[Workflowable], Awaitable[Any]], *, mirror_only: bool = False) -> Any:
    """`use(client)`; `mirror_only` for commands that only read the mirror: they need no
    Temporal and start no server."""
    async with await Workflowable.connect(Settings(), mirror_only=mirror_only) as client:
        return await use(client)


def _steer(process_id: int, verb: str, use: Callable[[Workflowable], Awaitable[Process | None]]) -> None:
    process = _run(_with_client(use))
    if process is None:
        console.print(f"Process {process_id}: {verb}.")
    else:
        console.print(f"Process {process_id} is [bold]{process.status.label}[/].")


ProcessId = Annotated[int, typer.Argument(help="The process's id (workflow_processes.id).")]


#: More processes than this need --yes (or a yes at the prompt) before a request goes to them.
CONFIRM_ABOVE = 5
WhenOption = typer.Option(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"], help="ISO 8601; without an offset: local time.")


#: The client's call for one process, per request.
ONE_PROCESS: dict[Request, Callable[[Workflowable, int], Awaitable[Process]]] = {
    Request.PAUSE: lambda client, process_id: client.pause_process(process_id),
    Request.RESUME: lambda client, process_id: client.resume_process(process_id),
    Request.CANCEL: lambda client, process_id: client.cancel_process(process_id),
    Request.RETRY: lambda client, process_id: client.retry_process(process_id),
}


def _steering_command(request: Request, summary: str) -> None:
    """Register `process <request>`: one process by id, or many by ids, filters or stdin."""

    def command(
        process_ids: Annotated[list[int] | None, typer.Argument(help="Process ids; without any, the filters (or --stdin) choose.", show_default=False)] = None,
        status: StatusOption = None,
        workflow: Annotated[str | None, typer.Option(help="Only processes of this workflow.")] = None,
        event: Annotated[str | None, typer.Option(help="Only processes of this event (its class name).")] = None,
        created_after: Annotated[datetime | None, WhenOption] = None,
        created_before: Annotated[datetime | None, WhenOption] = None,
        token: Annotated[str | None, typer.Option(help="KEY=VALUE: only processes holding this token.")] = None,
        stdin: Annotated[bool, typer.Option("--stdin", help="Read process ids from stdin, one per line.")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="List the processes it would go to; change nothing.")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help=f"Go ahead without asking when more than {CONFIRM_ABOVE} processes are chosen.")] = False,
    ) -> None:
        filters = {"status": status, "workflow": workflow, "event": event, "created_after": created_after, "created_before": created_before, "token": token}
        if process_ids and len(process_ids) == 1 and not stdin and not dry_run and not any(filters.values()):
            (process_id,) = process_ids
            _steer(process_id, request.value, lambda c: ONE_PROCESS[request](c, process_id))
            return
        ids = list(process_ids or []) + (_ids_from(sys.stdin.read()) if stdin else [])
        _steer_many(request, ids, filters, dry_run=dry_run, yes=yes)

    command.__doc__ = f"""{summary}

    One process by id, or many: by ids, by filters, or ids on stdin; --dry-run lists them first.

    Example: workflowable process {request.value} 42; workflowable process {request.value} --status Paused --workflow orders --dry-run"""
    command.__name__ = f"process_{request.value}"
    process_app.command(request.value)(command)


for _request, _help in (
    (Request.PAUSE, "Pause: the attempt in flight finishes, no new one starts."),
    (Request.RESUME, "Resume Paused processes where they were."),
    (Request.CANCEL, "Cancel live processes, the activity in flight included."),
    (Request.RETRY, "Run Failed processes again from their last successful activity."),
):
    _steering_command(_request, _help)


def _ids_from(text: str) -> list[int]:
    try:
        return [int(line) for line in text.split() if line.strip()]
    except ValueError as exc:
        raise InvalidArgument(f"--stdin wants process ids, one per line: {exc}") from None


def _steer_many(request: Request, ids: list[int], filters: dict[str, Any], *, dry_run: bool, yes: bool) -> None:
    async def choose(client: Workflowable) -> list[ProcessSummary]:
        if not any(filters.values()):
            return await _listed(client, list(dict.fromkeys(ids)))
        token = None
        if filters["token"] is not None:
            key, sep, value = filters["token"].partition("=")
            if not sep or not key:
                raise InvalidArgument(f"--token wants KEY=VALUE, got {filters['token']!r}")
            token = (key, value)
        return await client.list_processes(
            status=_status(filters["status"], ProcessStatus), workflow=filters["workflow"], event=filters["event"],
            created_after=_aware(filters["created_after"]), created_before=_aware(filters["created_before"]), token=token,
            ids=ids or None, limit=LIST_LIMIT,
        )

    chosen: list[ProcessSummary] = _run(_with_client(choose))
    if len(chosen) == LIST_LIMIT and any(filters.values()):
        errors.print(f"The filters chose {LIST_LIMIT:,} processes, the most one run takes: run it again for the rest.")
    valid = [p for p in chosen if request.allowed_from(p.status)]
    console.print(f"{_count(len(chosen), 'process')} chosen, {len(valid)} in a status that allows {request.value}.")
    if dry_run or not valid:
        table = Table("id", "workflow", "status", f"{request.value}?", title=f"{request.value} would go to {_count(len(valid), 'process')}")
        for p in chosen:
            table.add_row(str(p.id), p.workflow_name, p.status.label, "yes" if p in valid else "no: not in its status")
        console.print(table)
        return
    if len(valid) > CONFIRM_ABOVE and not yes:
        if not sys.stdin.isatty() or not typer.confirm(f"{request.value} {_count(len(valid), 'process')}?"):
            raise InvalidArgument(f"{request.value} would go to {_count(len(valid), 'process')}: confirm with --yes (or list them with --dry-run)")
    with Progress(TextColumn(request.value), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=errors, transient=True) as bar:
        task = bar.add_task(request.value, total=len(valid))
        result: BulkResult = _run(
            _with_client(lambda c: c.apply_to_processes(request, [p.id for p in valid], progress=lambda r: bar.update(task, completed=r.finished)))
        )
    console.print(f"{request.value}: {len(result.done)} done, {len(result.refused)} refused, {len(result.failed)} failed.")
    for process_id, reason in [*result.refused.items(), *result.failed.items()][:20]:
        errors.print(f"  process {process_id}: {reason}", soft_wrap=True, highlight=False)
    if result.failed:
        raise typer.Exit(1)


async def _listed(client: Workflowable, ids: list[int]) -> list[ProcessSummary]:
    """The processes of these ids as a list shows them, in one read, in the order given; an id
    of none is said on stderr and skipped."""
    found: dict[int, ProcessSummary] = {}
    for start in range(0, len(ids), LIST_LIMIT):
        batch = ids[start : start + LIST_LIMIT]
        found.update((p.id, p) for p in await client.list_processes(ids=batch, limit=len(batch)))
    for process_id in ids:
        if process_id not in found:
            errors.print(f"skipped: {ProcessNotFound(process_id)}")
    return [found[process_id] for process_id in ids if process_id in found]


def _number(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _aware(when: datetime | None) -> datetime | None:
    return None if when is None or when.tzinfo is not None else when.astimezone()


@process_app.command("wake")
def process_wake(process_id: ProcessId) -> None:
    """Check a Pending process's transitions now."""
    _steer(process_id, "wake sent (a waiting process checks its transitions now; a running one carries on)", lambda c: c.wake_process(process_id))


@process_app.command("dispatch")
def process_dispatch(process_id: ProcessId, queue: Annotated[str | None, typer.Option(help="Task queue (default: the event's).")] = None) -> None:
    """Start the Temporal workflow of a Created or Pending process."""
    _steer(process_id, "dispatched", lambda c: c.dispatch_process(process_id, queue))


@app.command("bench")
def bench(
    n: Annotated[int, typer.Option(min=1, help="Workflows in (a) and processes in (b), for throughput and again for latency.")] = 400,
    concurrency: Annotated[int, typer.Option(min=1, help="Started at once.")] = 50,
    sweep: Annotated[int, typer.Option(min=0, help="Due processes for the sweep (0: skip).")] = 10_000,
    attempt_rows: Annotated[
        int, typer.Option(min=0, help="Attempt rows the mirror grows by, with the report, reconcile's and the sweep's SQL timed before and after (0: skip).")
    ] = 10_000_000,
    waiting: Annotated[int, typer.Option(min=0, help="Processes waiting while the worker's memory is read (0: skip).")] = 5_000,
    deliveries: Annotated[int, typer.Option(min=0, help="Waiting processes one event is delivered to (0: skip).")] = 1_000,
    latency_load: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Latency is measured with processes started at this share of (a)'s throughput.")
    ] = 0.25,
    quick: Annotated[bool, typer.Option(help="A small smoke run: n=20, sweep=200, 20,000 rows, 50 waiting, 50 delivered to.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    own_servers: Annotated[bool, typer.Option(help="Use the servers in the settings instead of starting fresh ones.")] = False,
) -> None:
    """Measure Workflowable against plain Temporal on the same servers, and the sweep, report queries, worker memory and one event delivered to many waiting processes."""
    from .bench import Config, measure

    if quick:
        config = Config(n=20, concurrency=10, sweep=200, attempt_rows=20_000, waiting=50, latency_load=latency_load, deliveries=50)
    else:
        config = Config(n, concurrency, sweep, attempt_rows, waiting, latency_load, deliveries)
    # A slow refresh: the bar shares its process (and CPU) with the worker being measured.
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=as_json, refresh_per_second=1) as bar:

        def progress(label: str, total: int) -> Callable[[], None]:
            task = bar.add_task(label, total=total)
            return lambda: bar.advance(task)

        results = _run(measure(Settings() if own_servers else None, config, progress))
    if as_json:
        print(json.dumps(asdict(results), indent=2, default=str))
        return
    for table in bench_tables(results):
        console.print(table)


def bench_tables(results: Results) -> list[Table]:
    """The benchmark's figures and targets as the terminal shows them."""
    figures = Table("measure", "figure", title=f"Workflowable bench ({os.cpu_count()} cores)")
    for name, value in results.figures.items():
        if name == "report_queries":
            for query, q in value.items():
                if isinstance(q, dict) and "plan" in q:
                    figures.add_row(f"query {query}", f"{q['ms']:.1f} ms in Postgres, {q['fetched_ms']:.1f} ms with {q['rows']} rows fetched, index used: {q['uses_index']}")
                elif isinstance(q, dict):  # the report itself
                    figures.add_row(query, f"{q['ms']:.1f} ms")
            continue
        if name == "growth":
            figures.add_row("growth", f"{value['attempt_rows']:,} attempt rows, {value['processes']:,} processes, filled in {value['fill_s']:.0f} s")
            for measure, before in value["before"].items():
                figures.add_row(f"  {measure}", f"{before:.2f} ms before, {value['after'][measure]:.2f} ms after")
            continue
        if name == "cpu_ms_per_process":
            for part, cpu in value.items():
                figures.add_row(f"CPU per process ({part})", ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()) + " ms")
            continue
        figures.add_row(name, ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()))
    targets = Table("target", "value", "limit", "met", title="Targets")
    for name, t in results.targets.items():
        targets.add_row(name, f"{t['value']}", ("≥ " if t["at_least"] else "≤ ") + str(t["limit"]), "[green]yes[/]" if t["met"] else "[red]no[/]")
    return [figures, targets]


@app.command("check")
def check() -> None:
    """Check the connection to Temporal and Postgres, the search attributes and the schema version."""
    results: list[Check] = _run(run_checks(Settings()))
    for result in results:
        mark = "[green]ok    [/]" if result.ok else "[red]FAILED[/]"
        console.print(f"{mark}  {result.name:<18} {result.detail}", soft_wrap=True, highlight=False)
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@app.command("locks")
def locks(
    key: Annotated[str | None, typer.Argument(help="One lock key (default: every held or awaited key).")] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Show who holds each lock key and who waits for it, first in line first.

    Example: workflowable locks; workflowable locks customer-7 -o json"""

    async def read(client: Workflowable) -> list[LockState]:
        if key is None:
            return await client.list_locks()
        state = await client.get_lock(key)
        return [state] if state else []

    states: list[LockState] = _run(_with_client(read))
    if not states and output is Output.TABLE:
        console.print("No lock key is held or awaited." if key is None else f"Nobody holds or waits for {key!r}.")
        return

    def table() -> Table:
        shown = Table("lock key", "held by process", "lease until", "waiting processes (in order)")
        for state in states:
            holder = process_id_of(state.holder) if state.holder else "-"
            until = state.expires_at.isoformat(timespec="seconds") if state.holder and state.expires_at else "-"
            shown.add_row(state.key, holder, until, ", ".join(process_id_of(w) for w in state.waiting) or "-")
        return shown

    records = [
        {
            "key": state.key,
            "holder_process_id": _number(process_id_of(state.holder)) if state.holder else None,
            "expires_at": state.expires_at if state.holder else None,
            "waiting_process_ids": [_number(process_id_of(w)) for w in state.waiting],
        }
        for state in states
    ]
    emit(records, output, table)


@app.command("process-runs")
def process_runs(batch_size: Annotated[int, typer.Option(min=1, help="Processes locked and started per transaction.")] = 200) -> None:
    """Dispatch every due Created or Pending process without a live workflow, highest priority first."""

    async def sweep(client: Workflowable) -> SweepResult:
        with Progress(TextColumn("dispatching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("sweep", total=None)

            def show(result: SweepResult) -> None:
                bar.update(task, total=result.due, completed=result.dispatched + result.already_live)

            return await client.process_runs(batch_size=batch_size, progress=show)

    result: SweepResult = _run(_with_client(sweep))
    console.print(f"{result.dispatched} dispatched of {result.due} due ({result.already_live} already had a live workflow).")


@app.command("reconcile")
def reconcile_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the differences; change nothing.")] = False,
) -> None:
    """Compare the mirror with Temporal and repair what differs (terminated or vanished workflows, lost writes, abandoned attempts)."""

    async def check(client: Workflowable) -> ReconcileResult:
        with Progress(TextColumn("describing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("reconcile", total=None)
            return await client.reconcile(dry_run=dry_run, progress=lambda done, total: bar.update(task, total=total, completed=done))

    result: ReconcileResult = _run(_with_client(check))
    if result.differences:
        table = Table("process", "mirror", "Temporal", "would repair" if dry_run else "repaired")
        for difference in result.differences:
            table.add_row(str(difference.process_id), difference.mirror_status.label, difference.temporal, difference.repair)
        console.print(table)
    summary = f"Checked {result.checked} processes: {len(result.differences)} differ from Temporal"
    if dry_run:
        console.print(f"{summary}. Dry run: nothing changed.")
    else:
        moved = len(result.differences) - result.repaired
        console.print(f"{summary}; {result.repaired} repaired" + (f", {moved} had moved meanwhile and were left alone." if moved else "."))


@workflow_app.command("show")
def workflow_show(
    name: Annotated[str, typer.Argument(help="The workflow's name (or id).")],
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print a Mermaid flowchart instead of text.")] = False,
) -> None:
    """A workflow's graph: activities, transitions in their order with their conditions and
    deadlines, the events it listens for; as text or as Mermaid (paste it where Mermaid renders:
    GitHub, mermaid.live).

    Example: workflowable workflow show order-approval-v2 --mermaid > flow.mmd"""
    graph: SavedGraph = _run(_with_client(lambda c: c.describe_workflow(_number(name)), mirror_only=True))
    if mermaid:
        print(graph.mermaid())
        return
    for line in graph.lines():
        console.print(line, soft_wrap=True, highlight=False, markup=False)


@workflow_app.command("clone")
def workflow_clone(
    source: Annotated[str, typer.Argument(help="The workflow to copy (name).")],
    name: Annotated[str, typer.Argument(help="The new Draft's name.")],
) -> None:
    """Copy a workflow's activities, transitions, conditions and parameters into a new Draft."""
    new_id = _run(_with_client(lambda c: c.clone_workflow(source, name)))
    console.print(f"Workflow {name!r} (id {new_id}) is a Draft copy of {source!r}.")


@workflow_app.command("replace")
def workflow_replace(
    old: Annotated[str, typer.Argument(help="The Active workflow to deactivate.")],
    new: Annotated[str, typer.Argument(help="The workflow of the same event to activate.")],
) -> None:
    """Activate NEW and deactivate OLD in one step (live processes stay on OLD; a swap moves them)."""
    _run(_with_client(lambda c: c.replace_workflow(old, new)))
    console.print(f"Workflow {new!r} is Active; {old!r} is Deactivated.")


def _show_swap(swap: SwapInfo) -> None:
    console.print(
        f"Swap {swap.id}: {swap.from_workflow!r} -> {swap.to_workflow!r}, [bold]{swap.status.label}[/]; "
        f"{swap.moved} processes moved, {swap.remaining} live on {swap.from_workflow!r}; "
        f"output tokens {'carried over' if swap.transfer_output_tokens else 'left behind'}."
    )
    times = [(what, when) for what, when in (("scheduled", swap.scheduled_at), ("dispatched", swap.dispatched_at),
                                             ("started", swap.started_at), ("completed", swap.completed_at)) if when]
    if times:
        console.print(", ".join(f"{what} {_when(when)}" for what, when in times))
    table = Table(f"activity of {swap.from_workflow!r}", f"continues at, in {swap.to_workflow!r}")
    for old, new in swap.activity_map.items():
        table.add_row(old, new or "(the start)")
    console.print(table)


@swap_app.command("create")
def swap_create(
    old: Annotated[str, typer.Argument(help="The workflow whose live processes move.")],
    new: Annotated[str, typer.Argument(help="The workflow they move to (same event).")],
    maps: Annotated[list[str] | None, typer.Option("--map", help="OLD_ACTIVITY=NEW_ACTIVITY, or OLD_ACTIVITY=start; repeat. Unmapped: same name, else the start.")] = None,
    output_tokens: Annotated[bool, typer.Option("--output-tokens/--no-output-tokens", help="Carry output tokens of mapped activities over.")] = True,
) -> None:
    """Create a Draft swap and show its activity map."""
    activity_map: dict[str, str | None] = {}
    for item in maps or []:
        source, sep, target = item.partition("=")
        if not sep or not source:
            raise typer.BadParameter(f"--map wants OLD=NEW or OLD=start, got {item!r}")
        activity_map[source] = None if target in ("", "start") else target
    _show_swap(_run(_with_client(lambda c: c.create_swap(old, new, activity_map, transfer_output_tokens=output_tokens))))


@swap_app.command("schedule")
def swap_schedule(
    swap_id: Annotated[int, typer.Argument(help="The swap's id.")],
    at: Annotated[datetime, typer.Option("--at", help="When to run it (ISO 8601; without an offset: local time).", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])],
) -> None:
    """Run a Draft swap at a given time (a worker must serve the default task queue)."""
    when = at if at.tzinfo else at.astimezone()
    _show_swap(_run(_with_client(lambda c: c.schedule_swap(swap_id, when))))


@swap_app.command("dispatch")
def swap_dispatch(swap_id: Annotated[int, typer.Argument(help="The swap's id.")]) -> None:
    """Run a Draft or Scheduled swap now (a worker must serve the default task queue)."""
    _show_swap(_run(_with_client(lambda c: c.dispatch_swap(swap_id))))


@swap_app.command("status")
def swap_status(swap_id: Annotated[int, typer.Argument(help="The swap's id.")], output: OutputOption = Output.TABLE) -> None:
    """A swap's status, activity map and progress.

    Example: workflowable swap status 3 -o json"""
    swap: SwapInfo = _run(_with_client(lambda c: c.get_swap(swap_id), mirror_only=True))
    if output is Output.TABLE:
        _show_swap(swap)
    elif output is Output.JSON:
        print(json.dumps(_plain(swap), indent=2, ensure_ascii=False))
    else:  # its activity map, a row per activity of the old workflow
        emit([{"from_activity": old, "to_activity": new} for old, new in swap.activity_map.items()], output, Table)


@app.command("verify-integrity")
def verify_integrity_command(app_spec: AppOption = None) -> None:
    """Check that each workflow's event gives the input tokens its types require (requires_tokens); exit 1 if not."""
    catalog = Catalog.of(load_types(app_spec or Settings().app))

    async def check(client: Workflowable) -> tuple[int, list[IntegrityProblem]]:
        return await client.verify_integrity(catalog)

    checked, problems = _run(_with_client(check, mirror_only=True))
    for problem in problems:
        console.print(f"[red]missing[/]  {problem.describe()}", soft_wrap=True, highlight=False)
    if problems:
        console.print(f"{_count(len(problems), 'problem')} in {_count(checked, 'workflow')}.")
        raise typer.Exit(1)
    console.print(f"ok: {_count(checked, 'workflow')}, every type gets the input tokens it needs.")


@schedule_app.command("install")
def schedule_install(every: Annotated[int, typer.Option(min=1, help="Seconds between sweeps.")] = 60) -> None:
    """Create (or update) a Temporal Schedule that runs process-runs every so often."""
    _run(_with_client(lambda c: c.install_schedule(timedelta(seconds=every))))
    console.print(f"Schedule {PROCESS_RUNS_SCHEDULE!r} runs the sweep every {every} s on queue {Settings().task_queue!r}.")


@schedule_app.command("remove")
def schedule_remove() -> None:
    """Delete the sweep's Schedule."""
    removed = _run(_with_client(lambda c: c.remove_schedule()))
    console.print(f"Schedule {PROCESS_RUNS_SCHEDULE!r} {'removed' if removed else 'was not installed'}.")


@db_app.command("grant-reporting")
def db_grant_reporting(
    role: Annotated[str, typer.Argument(help="The Postgres role to give read access (created if missing).")],
    password: Annotated[str | None, typer.Option(help="Password if the role is created (it can then log in).", hide_input=True)] = None,
) -> None:
    """Give ROLE SELECT on the mirror's tables and views, and nothing else."""
    try:
        created = grant_reporting(database_url(Settings()), role, password=password)
    except WorkflowableError as exc:
        fail(exc)
    console.print(f"Role {role!r} {'created and ' if created else ''}granted SELECT on the mirror's tables and views.")


@app.command("trigger")
def trigger_command(
    event: Annotated[str, typer.Argument(help="The event's name (its class name), one of the app's types.")],
    data: Annotated[str, typer.Option("--data", "-d", help="The event's fields as a JSON object; @FILE reads it from a file, - from stdin.")] = "{}",
    app_spec: AppOption = None,
    dispatch: Annotated[bool, typer.Option("--dispatch/--no-dispatch", help="Start the processes now, or leave them Created.")] = True,
    output: OutputOption = Output.TABLE,
) -> None:
    """Trigger EVENT: a process for each Active workflow bound to it, started at once, and the
    event delivered to each live process that listens for it and matches it.

    Example: workflowable trigger OrderPlaced --app examples.order_approval:TYPES -d '{"order_id": 1, "amount": 120, "customer": "ada"}'"""
    settings = Settings()
    event_type = _event_type(load_types(app_spec or settings.app), event)
    fields_given = _json_object(data)
    triggered: Triggered = _run(_with_client(lambda c: c.trigger_event(event_type(**fields_given), dispatch=dispatch)))
    rows = [
        {"id": p.id, "action": "created", "workflow_name": p.workflow_name, "status": p.status, "queue": p.queue, "delivery": None}
        for p in triggered
    ]
    rows += [
        {"id": d.process_id, "action": "delivered", "workflow_name": None, "status": d.status, "queue": None, "delivery": d.seq}
        for d in triggered.deliveries
    ]

    def table() -> Table:
        title = f"{_count(len(triggered), 'process')} of {event} created, {_count(len(triggered.deliveries), 'process')} delivered to"
        shown = Table("id", "action", "workflow", "status", title=title)
        for p in triggered:
            shown.add_row(str(p.id), "created", p.workflow_name, p.status.label)
        for d in triggered.deliveries:
            shown.add_row(str(d.process_id), f"delivered (#{d.seq})", "", d.status.label)
        return shown

    emit(rows, output, table)
    if not rows and output is Output.TABLE:
        errors.print(f"No Active workflow is bound to {event} and no live process listens for it: nothing was written.")


def _event_type(types: list[type], name: str) -> type[WorkflowEvent]:
    events = {t.event_name(): t for t in types if isinstance(t, type) and issubclass(t, WorkflowEvent)}
    if name not in events:
        raise InvalidArgument(f"no event {name!r} among the app's types; they are: {', '.join(sorted(events)) or 'none'}")
    return events[name]


def _json_object(data: str) -> dict[str, Any]:
    """--data as given: JSON text, @FILE or - (stdin)."""
    if data == "-":
        data = sys.stdin.read()
    elif data.startswith("@"):
        data = Path(data[1:]).read_text(encoding="utf-8")
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"--data is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument(f"--data must be a JSON object of the event's fields, got {type(parsed).__name__}")
    return parsed


StatusOption = Annotated[str | None, typer.Option("--status", "-s", help="A process status, e.g. Paused.")]
AttemptStatusOption = Annotated[str | None, typer.Option("--status", "-s", help="An attempt status: In Progress, Success or Failure.")]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many rows, newest first.")]


def _status(name: str | None, kind: type[ProcessStatus] | type[AttemptStatus]) -> Any:
    if name is None:
        return None
    for status in kind:
        if status.label.lower() == name.lower() or status.name.lower() == name.lower():
            return status
    raise InvalidArgument(f"unknown status {name!r}; one of: {', '.join(s.label for s in kind)}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value else "-"


@app.command("processes")
def processes_command(
    status: StatusOption = None,
    workflow: Annotated[str | None, typer.Option(help="A workflow name.")] = None,
    event: Annotated[str | None, typer.Option(help="An event name (its class name).")] = None,
    limit: LimitOption = 50,
    output: OutputOption = Output.TABLE,
) -> None:
    """List processes, filtered by status, workflow and event.

    Example: workflowable processes --status Failed --workflow order-approval -o json"""

    async def read(client: Workflowable) -> list[ProcessSummary]:
        return await client.list_processes(status=_status(status, ProcessStatus), workflow=workflow, event=event, limit=limit)

    rows: list[ProcessSummary] = _run(_with_client(read, mirror_only=True))

    def table() -> Table:
        shown = Table("id", "workflow", "event", "status", "last activity done", "lock key", "next run", "changed", title=_count(len(rows), "process"))
        for p in rows:
            next_run = "-" if p.status.is_terminal else _when(p.next_run_at)
            shown.add_row(str(p.id), p.workflow_name, p.event_name, p.status.label, p.position_name or "(none yet)", p.lock_key or "-", next_run, _when(p.updated_at))
        return shown

    emit([_plain(p) for p in rows], output, table, columns=[f.name for f in fields(ProcessSummary)])


@process_app.command("show")
def process_show(
    process_id: ProcessId,
    output: OutputOption = Output.TABLE,
    graph: Annotated[bool, typer.Option("--graph", help="Also its workflow's graph, the path it took marked and where it is.")] = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Only the graph, as Mermaid, its path drawn green and its position highlighted.")] = False,
) -> None:
    """One process: its status, tokens (and what wrote each), the events delivered to it and its attempts as a timeline.

    Example: workflowable process show 42 -o json (csv: its attempts); workflowable process show 42 --graph"""
    process: Process = _run(_with_client(lambda c: c.get_process(process_id), mirror_only=True))
    if graph or mermaid:
        drawn: SavedGraph = _run(_with_client(lambda c: c.describe_workflow(process.workflow_id), mirror_only=True))
        path = [a.activity_id for a in process.attempts if a.status is AttemptStatus.SUCCESS]
        taken = drawn.taken(path)
        if mermaid:
            print(drawn.mermaid(taken=taken, here=process.position))
            return
    if output is Output.JSON:
        print(json.dumps(_plain(process), indent=2, ensure_ascii=False))
        return
    if output is Output.CSV:
        emit([_plain(a) for a in process.attempts], output, Table, columns=[f.name for f in fields(Attempt)])
        return
    console.print(
        f"[bold]Process {process.id}[/] of workflow {process.workflow_name!r}: [bold]{process.status.label}[/]"
        + (f" (paused from {process.paused_from.label})" if process.paused_from else "")
        + f", at activity {process.position_name or '(start)'}, queue {process.queue!r}"
        + (f", lock key {process.lock_key!r}" if process.lock_key else "")
    )
    console.print(
        f"dispatched {_when(process.dispatched_at)}, first run {_when(process.first_run_at)}, last run {_when(process.last_run_at)}, "
        f"next run {_when(process.next_run_at)}, completed {_when(process.completed_at)}"
    )
    if process.error:
        console.print(f"[red]error:[/] {process.error}")
    events = {d.seq: d.event_name for d in process.deliveries}
    tokens = Table("key", "value", "written by", title="Tokens")
    for token in process.tokens:
        value = token.value if len(token.value) <= 80 else token.value[:77] + "..."
        source = f"delivery {token.delivery} ({events.get(token.delivery, '?')})" if token.delivery else token.activity_name or "(input)"
        tokens.add_row(token.key, value, source)
    console.print(tokens)
    if process.deliveries:
        delivered = Table("delivery", "event", "at", title="Events delivered")
        for d in process.deliveries:
            delivered.add_row(str(d.seq), d.event_name, _when(d.delivered_at))
        console.print(delivered)
    timeline = Table("step", "activity", "attempt", "status", "started", "completed", "seconds", "error", title="Attempts")
    for a in process.attempts:
        seconds = f"{(a.completed_at - a.started_at).total_seconds():.3f}" if a.completed_at else "-"
        timeline.add_row(str(a.step), a.activity_name, str(a.attempt), a.status.label, _when(a.started_at), _when(a.completed_at), seconds, a.error or "")
    console.print(timeline)
    if graph:
        for line in drawn.lines(taken=taken, here=process.position):
            console.print(line, soft_wrap=True, highlight=False, markup=False)


@process_app.command("explain")
def process_explain(process_id: ProcessId, output: OutputOption = Output.TABLE) -> None:
    """Why a process is where it is: the path so far and why each step was taken; if it waits,
    which condition says no, its deadlines and the events that would reach it.

    Example: workflowable process explain 42"""
    explanation: Explanation = _run(_with_client(lambda c: c.explain_process(process_id), mirror_only=True))
    if output is Output.JSON:
        print(json.dumps({**_plain(explanation), "lines": explanation.lines()}, indent=2, ensure_ascii=False))
        return
    for line in explanation.lines():
        console.print(line, soft_wrap=True, highlight=False, markup=False)


@app.command("attempts")
def attempts_command(
    activity: Annotated[str | None, typer.Option(help="An activity name.")] = None,
    status: AttemptStatusOption = None,
    process: Annotated[int | None, typer.Option(help="A process id.")] = None,
    limit: LimitOption = 100,
    output: OutputOption = Output.TABLE,
) -> None:
    """List activity attempts, filtered by activity, status (In Progress, Success, Failure) and process.

    Example: workflowable attempts --status Failure --limit 20 -o csv"""

    async def read(client: Workflowable) -> list[dict[str, Any]]:
        return await client.list_attempts(activity=activity, status=_status(status, AttemptStatus), process_id=process, limit=limit)

    rows: list[dict[str, Any]] = _run(_with_client(read, mirror_only=True))

    def table() -> Table:
        shown = Table("id", "process", "workflow", "activity", "step", "attempt", "status", "started", "seconds", "error", title=f"{len(rows)} attempts")
        for r in rows:
            seconds = f"{r['duration_seconds']:.3f}" if r["duration_seconds"] is not None else "-"
            shown.add_row(str(r["id"]), str(r["workflow_process_id"]), r["workflow_name"], r["activity_name"], str(r["step"]), str(r["attempt"]), r["status"], _when(r["started_at"]), seconds, r["error"] or "")
        return shown

    emit(rows, output, table)


@app.command("report")
def report_command(
    html: Annotated[Path | None, typer.Option("--html", help="Also write a page with charts to this file.")] = None,
    since: Annotated[str, typer.Option(help="The window: a duration back from now (90m, 24h, 7d), a time (ISO 8601), or 'all' for all history.")] = "24h",
    stuck_after: Annotated[str, typer.Option(help="A live process without progress this long (90m, 24h, 7d) is listed as stuck.")] = "1h",
    output: OutputOption = Output.TABLE,
) -> None:
    """Processes per status; over the window: per activity, attempts, outcomes and durations,
    processes ended per hour, the failed ones with their errors; and the stuck ones.

    Example: workflowable report --since 7d --html report.html; workflowable report -o json (csv: the activities)"""
    settings = Settings()
    window, stuck = _since(since), _duration(stuck_after, "--stuck-after")
    report: Report = _run(_with_client(lambda c: c.report(since=window, stuck_after=stuck), mirror_only=True))
    if html is not None:
        html.write_text(render_html(report, ui=_ui_links(settings)), encoding="utf-8")
        errors.print(f"Wrote {html}.")
    if output is Output.JSON:
        whole = {key: getattr(report, key) for key in ("status_counts", "activities", "generated_at", "since", "hourly", "failed", "stuck")}
        print(json.dumps(_plain(whole), indent=2))
        return
    if output is Output.CSV:
        emit(report.activities, output, Table)
        return
    scope = "" if report.since is None else " (live ones now; ended ones in the window)"
    statuses = Table("status", "processes", title=f"{report.processes} processes{scope}")
    for name, count in report.status_counts.items():
        statuses.add_row(name, str(count))
    console.print(statuses)
    per_activity = Table("workflow", "activity", "attempts", "success", "failure", "failure rate", "avg s", "p50 s", "p95 s", title=f"{report.attempts} attempts")
    for a in report.activities:
        rate = f"{a['failure_rate']:.1%}" if a["failure_rate"] is not None else "-"
        stats = [f"{a[k]:.3f}" if a[k] is not None else "-" for k in ("avg_seconds", "p50_seconds", "p95_seconds")]
        per_activity.add_row(a["workflow_name"], a["activity_name"], str(a["attempts"]), str(a["successes"]), str(a["failures"]), rate, *stats)
    console.print(per_activity)
    if report.failed:
        failed = Table("process", "workflow", "failed at", "error", title=f"{_count(len(report.failed), 'failed process')} (newest first)")
        for f in report.failed:
            failed.add_row(str(f["id"]), f["workflow_name"], _when(f["at"]), (f["error"] or "")[:120])
        console.print(failed)
    if report.stuck:
        stuck_table = Table("process", "workflow", "status", "at activity", "last progress", title=f"{_count(len(report.stuck), 'process')} without progress for {stuck_after}")
        for s in report.stuck:
            stuck_table.add_row(str(s["id"]), s["workflow_name"], s["status"], s["position"] or "-", _when(s["last_progress"]))
        console.print(stuck_table)


def _duration(text: str, option: str) -> timedelta:
    """90s, 15m, 24h, 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) == 0:
        raise InvalidArgument(f"{option} wants a duration such as 90s, 15m, 24h or 7d, got {text!r}")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])


def _since(text: str) -> datetime | None:
    """--since: a duration back from now, an ISO 8601 time (local if it names no zone), or all."""
    if text == "all":
        return None
    if text[-1:] in ("s", "m", "h", "d") and text[:-1].isdigit():
        return datetime.now(UTC) - _duration(text, "--since")
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        raise InvalidArgument(f"--since wants a duration (24h, 7d) or an ISO 8601 time, got {text!r}") from None


def _ui_links(settings: Settings) -> str:
    """The start of a process's page in the Temporal web UI; the workflow id follows."""
    return f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}/workflows/"


@db_app.command("prune")
def db_prune(
    older_than: Annotated[str, typer.Option(help="Drop attempts and finished processes older than this (30d, 12h).")],
    dry_run: Annotated[bool, typer.Option(help="Count them; delete nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Go ahead without asking.")] = False,
) -> None:
    """Drop the attempt log's monthly partitions whose attempts all started before a cutoff
    (detached concurrently: writers go on), then delete finished processes (Completed, Failed,
    Cancelled) that ended before it, with their attempts, tokens, deliveries and checks, in
    short batches (row locks only; safe to interrupt and run again). Live processes are never
    deleted.

    Example: workflowable db prune --older-than 90d --dry-run"""
    age = _duration(older_than, "--older-than")

    async def count(client: Workflowable) -> PruneResult:
        return await client.prune(age, dry_run=True)

    found: PruneResult = _run(_with_client(count, mirror_only=True))
    console.print(f"{_count(found.found, 'finished process')} ended before {_when(found.before)}.")
    _show_partitions("Attempt-log partitions to drop", found.partitions)
    for partition in found.kept_open:
        console.print(f"[yellow]{partition.name} is kept: an attempt in it is still In Progress (`workflowable reconcile` closes abandoned ones).[/]")
    if dry_run or not (found.found or found.partitions):
        return
    what = f"{_count(found.found, 'process')} and all their rows" + (
        f", and {_count(len(found.partitions), 'attempt-log partition')} (with every attempt in them, live processes' too)"
        if found.partitions
        else ""
    )
    if not yes and (not sys.stdin.isatty() or not typer.confirm(f"Delete {what}?")):
        raise InvalidArgument(f"prune would delete {what}: confirm with --yes (or count them with --dry-run)")
    columns = (TextColumn("deleting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task("prune", total=found.found)

        async def delete(client: Workflowable) -> PruneResult:
            return await client.prune(age, progress=lambda n: bar.advance(task, n))

        done: PruneResult = _run(_with_client(delete, mirror_only=True))
    dropped = f"; dropped {_count(len(done.partitions), 'attempt-log partition')}" if done.partitions else ""
    console.print(f"Deleted {_count(done.deleted, 'process')} that ended before {_when(done.before)}, with their rows{dropped}.")


@db_app.command("partitions")
def db_partitions(
    ahead: Annotated[
        int | None, typer.Option(help="First create the missing monthly partitions up to this many months after the current one.")
    ] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """The attempt log's monthly partitions: range, rows (Postgres's estimate) and size on disk.
    Workers create them ahead by themselves; `db prune` drops the old ones.

    Example: workflowable db partitions --ahead 6; workflowable db partitions -o json"""

    async def read(client: Workflowable) -> list[Partition]:
        return await client.partitions(ahead=ahead)

    partitions: list[Partition] = _run(_with_client(read, mirror_only=True))
    emit([asdict(p) for p in partitions], output, lambda: _partitions_table("Attempt-log partitions", partitions))


def _show_partitions(title: str, partitions: Sequence[Partition]) -> None:
    if partitions:
        console.print(_partitions_table(title, partitions))


def _partitions_table(title: str, partitions: Sequence[Partition]) -> Table:
    # Months are UTC's; a partition holds the attempts started from its first day until (not on) its last.
    table = Table("from (UTC)", "until (UTC)", "rows (about)", "size", title=title)
    table.add_column("partition", no_wrap=True)  # whole, to be copied into SQL
    for p in partitions:
        start = f"{p.start.astimezone(UTC):%Y-%m-%d}" if p.start else "the beginning"
        rows = "not counted yet" if p.rows is None else f"{p.rows:,}"
        table.add_row(start, f"{p.end.astimezone(UTC):%Y-%m-%d}", rows, f"{p.bytes / 2**20:,.1f} MiB", p.name)
    return table


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the mirror's tables (Alembic)."""
    try:
        now = upgrade(database_url(Settings()), revision)
    except WorkflowableError as exc:
        fail(exc)
    console.print(f"Mirror schema at revision {now}.")


@app.command()
def worker(app_spec: AppOption = None, queue: QueueOption = None) -> None:
    """Serve process workflows and the app's activity types until Ctrl-C."""
    settings = Settings()

    async def main() -> None:
        types = load_types(app_spec or settings.app)
        await serve(settings, types, queue or [settings.task_queue])

    _run(main())


@app.command()
def dev(app_spec: AppOption = None, queue: QueueOption = None) -> None:
    """Bring up the dev stack (Temporal dev server, Postgres, migrations, search attributes) and a worker."""
    settings = Settings()

    async def main() -> None:
        types = load_types(app_spec or settings.app) if (app_spec or settings.app) else []
        async with dev_stack(settings, log=console.print) as running:
            await serve(running, types, queue or [settings.task_queue])

    _run(main())


def main(args: list[str] | None = None) -> None:
    """The console entry point; once the command is done it leaves through `exit_now` (see exiting.py)."""
    try:
        app(args)
        code = 0
    except SystemExit as leaving:
        code = status_of(leaving)
    except ValidationError as exc:  # a WORKFLOWABLE_* variable that does not parse
        errors.print(f"[red]error:[/] invalid settings: {exc}", soft_wrap=True, highlight=False)
        code = 1
    except Exception as exc:  # every other error as one line, never a traceback
        error = translate(exc)
        errors.print(f"[red]error:[/] {error}", soft_wrap=True, highlight=False)
        code = exit_code(error)
    exit_now(code)


if __name__ == "__main__":
    main()
