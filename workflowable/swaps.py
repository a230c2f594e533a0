"""Swaps from the client's side: running a swap's workflow now or at a time, and waiting for it.

The swap's rows and their moves are in db/versions.py; the workflow that moves the processes
is workflows/swaps.py.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from .db import versions
from .db.versions import SwapInfo
from .errors import InvalidSwap, WaitTimeout
from .states import SwapStatus
from .workflows.swaps import SwapInput, SwapWorkflow, swap_workflow_id


async def schedule(engine: AsyncEngine, temporal: Client, task_queue: str, swap_id: int, at: datetime) -> None:
    """Run a Draft swap at `at`: a durable timer in its workflow, started now."""
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise InvalidSwap(f"a swap's time must be a timezone-aware datetime, got {at!r}")
    await versions.move_swap(engine, swap_id, SwapStatus.SCHEDULED, scheduled_at=at)
    await _start(temporal, task_queue, swap_id, at)


async def dispatch(engine: AsyncEngine, temporal: Client, task_queue: str, swap_id: int) -> None:
    """Run a Draft or Scheduled swap now: a Scheduled one's workflow is told to stop waiting."""
    was = await versions.move_swap(engine, swap_id, SwapStatus.DISPATCHED)
    if was is SwapStatus.SCHEDULED:
        await temporal.get_workflow_handle(swap_workflow_id(swap_id)).signal(SwapWorkflow.dispatch_now)
    else:
        await _start(temporal, task_queue, swap_id, None)


async def _start(temporal: Client, task_queue: str, swap_id: int, at: datetime | None) -> None:
    await temporal.start_workflow(SwapWorkflow.run, SwapInput(swap_id, at), id=swap_workflow_id(swap_id), task_queue=task_queue, static_summary=f"Swap {swap_id}")


async def wait(engine: AsyncEngine, temporal: Client, swap_id: int, timeout: float) -> SwapInfo:
    """Until the swap's workflow ends (every live process moved); the swap then."""
    swap = await versions.get_swap(engine, swap_id)  # an unknown id is an InvalidSwap, not a Temporal error
    try:
        await asyncio.wait_for(temporal.get_workflow_handle(swap_workflow_id(swap.id)).result(), timeout)
    except TimeoutError:
        raise WaitTimeout(f"swap {swap.id} did not complete within {timeout} s; it goes on") from None
    return await versions.get_swap(engine, swap.id)
