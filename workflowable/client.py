"""`Workflowable`: the trigger side. Define and save workflows, trigger events, read processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, cast

from temporalio.client import Client

from . import locks, swaps, trigger
from .boundary import check_id, public_api
from .connection import connect_temporal, database_url
from .db import saved_definitions, versions
from .db.database import Database
from .db.drawing import SavedGraph, load_graph
from .db.explain import Explanation, explain
from .db.integrity import IntegrityProblem, verify_integrity
from .db.mirror import Mirror
from .db.partitions import Partition, ensure_partitions, list_partitions
from .db.reporting import Process, ProcessSummary, Report, build_report, get_process, list_attempts, list_processes
from .db.retention import PruneResult, prune
from .db.versions import SwapInfo
from .definitions import Catalog, WorkflowEvent
from .dispatch import SweepResult, dispatch_one, install_schedule, process_runs, remove_schedule, retry
from .errors import (
    InvalidArgument,
    InvalidSwap,
    ProcessNotFound,
    TemporalError,
)
from .graph import WorkflowDefinition
from .reconcile import ReconcileResult, reconcile
from .requests import BulkResult, apply_request, apply_to_each, live_state, wait_until_ended, wake
from .settings import Settings
from .states import AttemptStatus, ProcessStatus, Request, WorkflowStatus
from .trigger import Triggered
from .workflows.locks import LockState
from .workflows.messages import ProcessState


@public_api
class Workflowable:
    """An async client of the mirror and of Temporal. Use `await Workflowable.connect()`.

    Every method raises only `WorkflowableError` subclasses (docs/reliability.md lists them)."""

    def __init__(self, settings: Settings, database: Database, temporal: Client) -> None:
        self.settings = settings
        self.database = database
        #: The SQLAlchemy engine, for a caller's own queries of the mirror (and `build_worker`).
        self.engine = database.engine
        self.temporal = temporal
        self.mirror = Mirror(database, checks_per_run=settings.checks_per_run)

    @classmethod
    async def connect(cls, settings: Settings | None = None, *, mirror_only: bool = False) -> Workflowable:
        """Connect to the mirror and to Temporal as `settings` (default: the environment) say.
        `mirror_only`: for reads of the mirror (processes, attempts, reports), without Temporal,
        and without starting the dev stack's Postgres if it is not running; a method that needs
        Temporal then raises `TemporalError`."""
        settings = settings or Settings()
        database = Database.open(database_url(settings, start=not mirror_only))
        temporal = cast(Client, _MirrorOnly()) if mirror_only else await connect_temporal(settings)
        return cls(settings, database, temporal)

    async def close(self) -> None:
        await self.database.close()

    async def __aenter__(self) -> Workflowable:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    # Definitions

    async def register(self, *types: type) -> None:
        """Record event, activity and condition types in their tables (saving a workflow does it too)."""
        async with self.engine.begin() as conn:
            await saved_definitions.register_types(conn, types)

    async def save_workflow(self, definition: WorkflowDefinition, *, activate: bool = False) -> int:
        """Create the workflow, or replace the graph of the Draft of that name; returns its id."""
        workflow_id = await saved_definitions.save_workflow(self.engine, definition)
        if activate:
            await self.activate_workflow(workflow_id)
        return workflow_id

    async def clone_workflow(self, source: str | int, name: str) -> int:
        """Copy a workflow's graph (activities, transitions, conditions, parameters) into a new
        Draft called `name`; returns its id."""
        return await versions.clone_workflow(self.engine, source, name)

    async def replace_workflow(self, old: str | int, new: str | int) -> None:
        """Activate `new` and deactivate the Active `old` (same event) in one step. Live
        processes stay on `old`; a swap moves them."""
        await versions.replace_workflow(self.engine, old, new)

    async def create_swap(
        self,
        old: str | int,
        new: str | int,
        activity_map: Mapping[str, str | None] | None = None,
        *,
        transfer_output_tokens: bool = True,
    ) -> SwapInfo:
        """A Draft swap of `old`'s live processes onto `new` (same event). `activity_map` maps
        old activity names to new ones, or to None to start over; any not given map to the new
        activity of the same name, else to the start."""
        swap_id = await versions.create_swap(self.engine, old, new, activity_map, transfer_output_tokens=transfer_output_tokens)
        return await self.get_swap(swap_id)

    async def schedule_swap(self, swap_id: int, at: datetime) -> SwapInfo:
        """Run a Draft swap at `at` (a durable timer in its Temporal workflow; no cron needed)."""
        await swaps.schedule(self.engine, self.temporal, self.settings.task_queue, _swap_id(swap_id), at)
        return await self.get_swap(swap_id)

    async def dispatch_swap(self, swap_id: int) -> SwapInfo:
        """Run a Draft or Scheduled swap now. Until it completes, processes of both workflows
        wait to be dispatched; it dispatches them at the end."""
        await swaps.dispatch(self.engine, self.temporal, self.settings.task_queue, _swap_id(swap_id))
        return await self.get_swap(swap_id)

    async def get_swap(self, swap_id: int) -> SwapInfo:
        """A swap's status, map and progress (processes moved, processes left to move)."""
        return await versions.get_swap(self.engine, _swap_id(swap_id))

    async def wait_for_swap(self, swap_id: int, *, timeout: float = 300.0) -> SwapInfo:
        """Wait until the swap's workflow ends (every live process moved) and return the swap."""
        return await swaps.wait(self.engine, self.temporal, _swap_id(swap_id), _seconds(timeout))

    async def describe_workflow(self, workflow: str | int) -> SavedGraph:
        """A saved workflow's graph as people read it: `.lines()` in words, `.mermaid()` drawn."""
        async with self.engine.connect() as conn:
            return await load_graph(conn, workflow)

    async def activate_workflow(self, workflow: str | int) -> None:
        await saved_definitions.set_workflow_status(self.engine, workflow, WorkflowStatus.ACTIVE)

    async def deactivate_workflow(self, workflow: str | int) -> None:
        await saved_definitions.set_workflow_status(self.engine, workflow, WorkflowStatus.DEACTIVATED)

    async def archive_workflow(self, workflow: str | int) -> None:
        await saved_definitions.set_workflow_status(self.engine, workflow, WorkflowStatus.ARCHIVED)

    # Processes

    async def trigger_event(self, event: WorkflowEvent, *, dispatch: bool = True, run_at: datetime | None = None) -> Triggered:
        """Create one Created process per Active workflow bound to the event, then dispatch each;
        and deliver the event to every live process of a workflow that listens for it
        (`WorkflowDefinition.listen`) whose tokens match it.

        The processes, their input tokens and the deliveries are written in one transaction;
        nothing is written if the event does not validate. With `dispatch=False`, or a `run_at`
        in the future, new processes stay Created until `dispatch_process` or the
        `process-runs` sweep (once due) starts them. Returns the processes created (a list);
        its `deliveries` are the processes the event was delivered to.
        """
        return await trigger.trigger_event(self.mirror, self.temporal, self.settings, event, dispatch=dispatch, run_at=run_at)

    async def dispatch_process(self, process_id: int, queue: str | None = None) -> Process:
        """Start the Temporal workflow of a Created or Pending process (a no-op if it has one)."""
        process_id = check_id(process_id)
        if queue is not None and (not isinstance(queue, str) or not queue or len(queue) > 1000):
            raise InvalidArgument(f"a task queue is 1 to 1000 characters, got {queue!r:.80}")
        await dispatch_one(self.temporal, self.mirror, process_id, queue)
        return await self.get_process(process_id)

    async def process_runs(self, *, batch_size: int = 200, progress: Callable[[SweepResult], None] | None = None) -> SweepResult:
        """Dispatch every due Created or Pending process without a live workflow, highest priority first."""
        return await process_runs(self.engine, self.temporal, batch_size=batch_size, progress=progress)

    async def install_schedule(self, every: timedelta = timedelta(minutes=1)) -> None:
        """Have Temporal run the `process-runs` sweep every `every` (a Schedule; no cron needed).
        A worker must serve the default task queue, where the sweep runs."""
        await install_schedule(self.temporal, self.settings.task_queue, every)

    async def remove_schedule(self) -> bool:
        """Delete the sweep's Schedule; False if there was none."""
        return await remove_schedule(self.temporal)

    async def pause_process(self, process_id: int, *, timeout: float = 30.0) -> Process:
        """Pause: the attempt in flight finishes, no new one starts. Valid from Created, Pending,
        Dispatched and Running; returns once the mirror shows Paused."""
        return await self._request(process_id, Request.PAUSE, timeout)

    async def resume_process(self, process_id: int, *, timeout: float = 30.0) -> Process:
        """Resume a Paused process where it was; returns once the mirror shows it."""
        return await self._request(process_id, Request.RESUME, timeout)

    async def cancel_process(self, process_id: int, *, timeout: float = 30.0) -> Process:
        """Cancel a live process, the activity in flight included; returns once it is Cancelled."""
        return await self._request(process_id, Request.CANCEL, timeout)

    async def retry_process(self, process_id: int) -> Process:
        """Run a Failed process again from its last successful activity, as a new run of its workflow id."""
        process_id = check_id(process_id)
        await retry(self.temporal, self.mirror, process_id)
        return await self.get_process(process_id)

    async def wake_process(self, process_id: int) -> None:
        """Check a Pending process's transitions now rather than at its next_run_at."""
        await wake(self.temporal, self.mirror, check_id(process_id))

    async def get_live_state(self, process_id: int, *, timeout: float = 10.0) -> ProcessState | None:
        """The running workflow's own view of the process (its `state` query); None without one.
        A worker answers the query: `RequestTimeout` if none does within `timeout` seconds."""
        return await live_state(self.temporal, self.mirror, check_id(process_id), _seconds(timeout))

    async def get_lock(self, key: str) -> LockState | None:
        """Who holds a lock key and who waits for it, in order; None if nobody does."""
        return await locks.get_lock(self.temporal, key)

    async def list_locks(self) -> list[LockState]:
        """Every lock key that is held or waited for."""
        return await locks.list_locks(self.temporal)

    async def get_process(self, process_id: int) -> Process:
        """Status, position, timestamps, tokens and attempts of one process, from the mirror."""
        return await get_process(self.engine, check_id(process_id))

    async def list_processes(
        self,
        *,
        status: ProcessStatus | None = None,
        workflow: str | None = None,
        event: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        token: tuple[str, str] | None = None,
        ids: Iterable[int] | None = None,
        limit: int = 50,
    ) -> list[ProcessSummary]:
        """Processes, newest first, at most `limit` of them, filtered by status, workflow name,
        event name, creation time, a token (key, value) they hold and their ids (an id of no
        process is left out)."""
        for when in (created_after, created_before):
            if when is not None and (not isinstance(when, datetime) or when.tzinfo is None):
                raise InvalidArgument(f"created_after and created_before are timezone-aware datetimes, got {when!r}")
        wanted = None if ids is None else _ids(ids)
        return await list_processes(
            self.engine, status=status, workflow=workflow, event=event,
            created_after=created_after, created_before=created_before, token=token, ids=wanted, limit=_limit(limit),
        )

    async def apply_to_processes(
        self,
        request: Request,
        process_ids: Iterable[int],
        *,
        timeout: float = 30.0,
        concurrency: int = 8,
        progress: Callable[[BulkResult], None] | None = None,
    ) -> BulkResult:
        """Pause, resume, cancel or retry many processes, `concurrency` at a time: which were
        done, which were refused (not valid in their status, or not found) and which failed
        (and why). Each is the single request, so running it again after an interruption
        refuses what was done and does the rest."""
        if not isinstance(request, Request):
            raise InvalidArgument(f"request is a Request (pause, resume, cancel, retry), got {request!r}")
        ids = [check_id(process_id) for process_id in process_ids]
        one = {
            Request.PAUSE: lambda i: self.pause_process(i, timeout=timeout),
            Request.RESUME: lambda i: self.resume_process(i, timeout=timeout),
            Request.CANCEL: lambda i: self.cancel_process(i, timeout=timeout),
            Request.RETRY: self.retry_process,
        }[request]
        return await apply_to_each(ids, one, concurrency=concurrency, progress=progress)

    async def list_attempts(
        self,
        *,
        activity: str | None = None,
        status: AttemptStatus | None = None,
        process_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Attempts (rows of the durations view), newest first, filtered by activity name, status and process."""
        process_id = None if process_id is None else check_id(process_id)
        return await list_attempts(self.engine, activity=activity, status=status, process_id=process_id, limit=_limit(limit))

    async def report(self, *, since: datetime | None = None, stuck_after: timedelta = timedelta(hours=1)) -> Report:
        """Processes per status now; since `since` (all history if None): per activity, attempts,
        outcomes and durations, processes ended per hour, the failed ones; and the live ones
        without progress for `stuck_after`."""
        if since is not None and (not isinstance(since, datetime) or since.tzinfo is None):
            raise InvalidArgument(f"since must be a timezone-aware datetime, got {since!r}")
        if not isinstance(stuck_after, timedelta) or stuck_after <= timedelta(0):
            raise InvalidArgument(f"stuck_after must be a positive timedelta, got {stuck_after!r}")
        return await build_report(self.engine, since=since, stuck_after=stuck_after)

    async def prune(
        self, older_than: timedelta, *, dry_run: bool = False, batch: int = 1_000, progress: Callable[[int], None] | None = None
    ) -> PruneResult:
        """Drop the attempt log's monthly partitions older than `older_than` (detached
        concurrently), then delete the finished processes (Completed, Failed, Cancelled) that
        ended more than `older_than` ago, with their rows, in short batches (row locks only);
        `dry_run` counts them. Live processes are never deleted."""
        if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
            raise InvalidArgument(f"older_than must be a positive timedelta, got {older_than!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or not 0 < batch <= 100_000:
            raise InvalidArgument(f"batch is a number of processes from 1 to 100,000, got {batch!r}")
        return await prune(self.engine, older_than, batch=batch, dry_run=dry_run, progress=progress)

    async def partitions(self, *, ahead: int | None = None) -> list[Partition]:
        """The attempt log's monthly partitions, oldest first; with `ahead`, those missing up to
        `ahead` months after the current one are created first (workers do so by themselves)."""
        if ahead is not None:
            if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead <= 120:
                raise InvalidArgument(f"ahead is a number of months from 0 to 120, got {ahead!r}")
            await ensure_partitions(self.engine, ahead=ahead)
        async with self.engine.connect() as conn:
            return await list_partitions(conn)

    async def verify_integrity(self, catalog: Catalog) -> tuple[int, list[IntegrityProblem]]:
        """(workflows checked, problems): every input token an activity or condition type of a
        saved workflow requires is given by the workflow's event."""
        return await verify_integrity(self.engine, catalog)

    async def reconcile(self, *, dry_run: bool = False, progress: Callable[[int, int], None] | None = None) -> ReconcileResult:
        """Compare every process not Completed or Cancelled with its Temporal workflow and repair
        what differs (a workflow terminated outside Workflowable, a lost write, attempts left
        In Progress by a dead worker); with `dry_run`, only list the differences."""
        return await reconcile(self.engine, self.temporal, dry_run=dry_run, progress=progress)

    async def explain_process(self, process_id: int) -> Explanation:
        """Why the process is where it is: the path so far and why each step was taken; if it
        waits, what its last check found, its deadlines and the events that would reach it.
        `.lines()` says it in plain words."""
        return await explain(self.engine, check_id(process_id))

    async def wait_for_process(self, process_id: int, *, timeout: float = 60.0) -> Process:
        """Wait for the process's workflow to end and return the mirror's view."""
        process_id = check_id(process_id)
        await wait_until_ended(self.temporal, self.mirror, process_id, _seconds(timeout))
        return await self.get_process(process_id)

    async def _request(self, process_id: int, request: Request, timeout: float) -> Process:
        """Apply a request (requests.py says how), then read the process as it is now."""
        process_id = check_id(process_id)
        await apply_request(self.temporal, self.mirror, process_id, request, _seconds(timeout))
        return await self.get_process(process_id)


class _MirrorOnly:
    """Stands in for Temporal's client in a client connected to the mirror only."""

    def __getattr__(self, name: str) -> Any:
        raise TemporalError("this client reads the mirror only (Workflowable.connect(mirror_only=True)); connect without it to reach Temporal")


def _ids(ids: object) -> list[int]:
    """Ids to filter a list by, each checked as `check_id` checks one; an id out of Postgres's
    range names no process, so it is left out like any other id of none."""
    if isinstance(ids, str | bytes | bytearray | memoryview) or not isinstance(ids, Iterable):
        raise InvalidArgument(f"ids is a collection of process ids, got {type(ids).__name__} {ids!r:.60}")
    wanted = []
    for value in ids:
        try:
            wanted.append(check_id(value))
        except ProcessNotFound:
            continue
    return wanted


#: The most processes one `list_processes` returns.
LIST_LIMIT = 100_000


def _limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= LIST_LIMIT:
        raise InvalidArgument(f"limit is a number of rows from 1 to {LIST_LIMIT:,}, got {limit!r}")
    return limit


def _seconds(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 10**6:
        raise InvalidArgument(f"timeout is a number of seconds, above 0 and under 1,000,000, got {timeout!r}")
    return float(timeout)


def _swap_id(value: object) -> int:
    return check_id(value, "swap", lambda missing: InvalidSwap(f"no swap has id {missing}"))
