"""Trigger: an event in, processes out, and the event delivered to the processes waiting for it.

The event is checked whole before anything is written (its fields, their sizes, its lock key).
One statement then writes its processes and their input tokens, one per Active workflow bound
to the event, and its deliveries: to every live process of a workflow that listens for the
event and whose tokens match it, the event's fields as tokens, numbered per process. Each new
process's workflow is started with its plan, so that it need not read it back; each process
delivered to is signalled, so that it checks its transitions at once. A signal that does not
arrive (no workflow was running, Temporal did not answer) delays a delivery, never loses it: the
process reads it from the mirror at its next check of its transitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from temporalio.client import Client
from temporalio.service import RPCError

from . import tracing
from .db.mirror import DispatchTarget, Mirror
from .db.reporting import Process, Token
from .definitions import WorkflowEvent, check_token_sizes
from .dispatch import start_and_record
from .errors import InvalidArgument, InvalidEventPayload
from .settings import Settings
from .states import ProcessStatus
from .workflows.messages import Delivery, Signals, workflow_id_for

T = TypeVar("T")

#: Signals to processes delivered to, sent this many at a time.
SIGNALS_AT_ONCE = 50


@dataclass(frozen=True)
class Delivered:
    """An event delivered to a live process: the process's `seq`th delivery, and the process's
    `status` then."""

    process_id: int
    seq: int
    status: ProcessStatus
    signalled: bool  #: its workflow was told; if not, the process reads the delivery at its next check


class Triggered(list[Process]):
    """What `trigger_event` did: the processes it created (the list itself, as before
    deliveries existed) and, in `deliveries`, the live processes it delivered the event to."""

    def __init__(self, created: Iterable[Process], deliveries: Iterable[Delivered] = ()) -> None:
        super().__init__(created)
        self.deliveries = list(deliveries)


@dataclass(frozen=True)
class CheckedEvent:
    """An event that passed every check: its type, its fields as tokens, its lock key."""

    event_type: type[WorkflowEvent]
    tokens: dict[str, str]
    lock_key: str | None


def check_event(event: object, settings: Settings) -> CheckedEvent:
    """The event as it will be written, or the typed error naming what is wrong with it."""
    if not isinstance(event, WorkflowEvent):
        raise InvalidEventPayload(type(event).__name__, [{"loc": (), "msg": "not a WorkflowEvent instance"}])
    event_type = type(event)
    checked = event.revalidated()
    tokens, lock_key = checked.to_tokens(), checked.workflow_process_lock_key()
    check_token_sizes(tokens, settings.max_token_bytes, total_limit=settings.max_process_tokens_bytes)
    if lock_key is not None and (not isinstance(lock_key, str) or not lock_key or len(lock_key) > 255 or "\x00" in lock_key):
        raise InvalidArgument(
            f"{event_type.__name__}.workflow_process_lock_key() must return None or 1 to 255 characters without NUL, got {lock_key!r:.80}"
        )
    return CheckedEvent(event_type, tokens, lock_key)


async def trigger_event(
    mirror: Mirror, temporal: Client, settings: Settings, event: WorkflowEvent, *, dispatch: bool, run_at: datetime | None
) -> Triggered:
    """`Workflowable.trigger_event`: create the event's processes and deliver it to those
    listening, then dispatch the new ones due now and signal those delivered to."""
    if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
        raise InvalidArgument(f"run_at must be a timezone-aware datetime, got {run_at!r}")
    checked = check_event(event, settings)
    with tracing.span("workflowable.trigger_event", enabled=settings.tracing, **{tracing.EVENT: checked.event_type.event_name()}) as current:
        triggered = await _trigger(mirror, temporal, settings, checked, dispatch=dispatch, run_at=run_at)
        if current is not None and current.is_recording():
            current.set_attribute(tracing.PROCESS_ID, [p.id for p in triggered])
        return triggered


async def _trigger(
    mirror: Mirror, temporal: Client, settings: Settings, checked: CheckedEvent, *, dispatch: bool, run_at: datetime | None
) -> Triggered:
    event_type, input_tokens, lock_key = checked.event_type, checked.tokens, checked.lock_key
    queue = event_type.task_queue or settings.task_queue
    created, delivered = await mirror.trigger(event_type.class_path(), queue, lock_key, input_tokens, next_run_at=run_at)
    # Not now: asked so, a time to come, or a running swap holds them back (it dispatches them).
    dispatching = [dispatch and not p.held and (run_at is None or run_at <= datetime.now(UTC)) for p in created]
    event_name = event_type.event_name()
    starts = {
        p.id: _start_new(temporal, mirror, DispatchTarget(p.id, ProcessStatus.CREATED, queue, p.workflow_name, event_name, p.priority), p.workflow_id, checked)
        for p, go in zip(created, dispatching, strict=True)
        if go
    }
    started = await asyncio.gather(*starts.values(), return_exceptions=True)
    # The deliveries are written: their processes are told even if a start failed.
    deliveries = await _signal_all(temporal, [(row.id, Delivery(event_name, input_tokens, row.seq)) for row in delivered])
    dispatched_at = dict(zip(starts, _or_first_error(started), strict=True))
    statuses = {row.id: ProcessStatus(row.status) for row in delivered}
    # As they were when created and dispatched, built from what was written rather than read
    # back (the caller is often about to trigger the next event). `dispatched_at` is None in
    # the rare case the worker began the run before the dispatcher's write.
    input_rows = tuple(Token(key, value, None, None) for key, value in input_tokens.items())
    processes = [
        Process(
            id=p.id,
            workflow_id=p.workflow_id,
            workflow_name=p.workflow_name,
            status=ProcessStatus.DISPATCHED if go else ProcessStatus.CREATED,
            paused_from=None,
            position=None,
            position_name=None,
            queue=queue,
            lock_key=lock_key,
            dispatched_at=dispatched_at.get(p.id),
            first_run_at=None,
            last_run_at=None,
            next_run_at=p.next_run_at,
            completed_at=None,
            error=None,
            tokens=input_rows,
            attempts=(),
        )
        for p, go in zip(created, dispatching, strict=True)
    ]
    return Triggered(processes, (Delivered(pid, d.seq, statuses[pid], signalled) for pid, d, signalled in deliveries))


async def _signal_all(temporal: Client, deliveries: list[tuple[int, Delivery]]) -> list[tuple[int, Delivery, bool]]:
    """Tell each process's workflow of its delivery, SIGNALS_AT_ONCE at a time; whether each was told."""
    told: list[tuple[int, Delivery, bool]] = []
    for start in range(0, len(deliveries), SIGNALS_AT_ONCE):
        batch = deliveries[start : start + SIGNALS_AT_ONCE]
        results = await asyncio.gather(*(_signal(temporal, pid, delivery) for pid, delivery in batch))
        told += [(pid, delivery, ok) for (pid, delivery), ok in zip(batch, results, strict=True)]
    return told


async def _signal(temporal: Client, process_id: int, delivery: Delivery) -> bool:
    try:
        await temporal.get_workflow_handle(workflow_id_for(process_id)).signal(Signals.DELIVER, delivery)
    except RPCError:
        # No workflow running (not started yet, ended meanwhile, between runs): it reads the
        # delivery as it begins. Temporal unreachable: the process reads it at its next check.
        return False
    return True


async def _start_new(temporal: Client, mirror: Mirror, target: DispatchTarget, workflow_id: int, event: CheckedEvent) -> datetime | None:
    """Dispatch a process just created, with its plan so that its workflow need not read it
    (one local activity less per process); a process with a lock key reads it as it begins.
    The start is eager: a worker in this process, if there is one, runs it straight away.
    When it was marked Dispatched (None: its run began before this call's write)."""
    plan = None if event.lock_key is not None else await mirror.new_plan(target.process_id, workflow_id, event.tokens)
    _, dispatched_at = await start_and_record(temporal, mirror, target, plan=plan, eager=True)
    return dispatched_at  # type: ignore[return-value]


def _or_first_error(results: list[T | BaseException]) -> list[T]:
    """The results of calls that all ran to their end, or the first error among them."""
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]
