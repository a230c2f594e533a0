"""The swap runner: a Temporal workflow per swap, `workflowable-swap-<id>`, on the default queue.

It waits until the swap's time (a durable timer, cut short by `dispatch_now`), makes the new
workflow replace the old one, then moves the old workflow's live processes: those without a
running workflow directly, the others by a `swap` signal, so each moves itself at its next
boundary. It checks again, backing off, until none is left, then completes the swap and
dispatches the processes it held back. Sandbox-safe: workflow code only; the database work is
in `versions.py`, run by the activities in `activities.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow

from .messages import Activities, Signals

SWAP_WORKFLOW = "WorkflowableSwap"
#: The signal a process workflow gets: move at your next boundary (argument: the swap id).
SWAP_SIGNAL = Signals.SWAP
STEP_TIMEOUT = timedelta(minutes=5)
#: Between checks for processes still to move: from the first, doubling up to the last.
FIRST_CHECK, LAST_CHECK = timedelta(seconds=1), timedelta(seconds=30)


def swap_workflow_id(swap_id: int) -> str:
    return f"workflowable-swap-{swap_id}"


@dataclass
class SwapInput:
    swap_id: int
    scheduled_at: datetime | None = None


@dataclass
class SwapStep:
    swap_id: int
    signalled: list[int] = field(default_factory=list)  #: processes told to move already


@dataclass
class SwapProgress:
    remaining: int  #: live processes still on the old workflow
    signalled: list[int]


@dataclass
class SwapMove:
    """What a process workflow's local activity needs to move itself."""

    swap_id: int
    process_id: int
    run_id: str


@workflow.defn(name=SWAP_WORKFLOW)
class SwapWorkflow:
    def __init__(self) -> None:
        self.now = False
        self.remaining: int | None = None

    @workflow.run
    async def run(self, input: SwapInput) -> str:
        if input.scheduled_at is not None and input.scheduled_at > workflow.now():
            workflow.set_current_details(f"Swap {input.swap_id}: scheduled for {input.scheduled_at.isoformat(timespec='seconds')}")
            try:
                await workflow.wait_condition(lambda: self.now, timeout=input.scheduled_at - workflow.now())
            except TimeoutError:
                pass
        await workflow.execute_activity(Activities.SWAP_BEGIN, input.swap_id, start_to_close_timeout=STEP_TIMEOUT)
        step, pause = SwapStep(input.swap_id), FIRST_CHECK
        while True:
            progress = await workflow.execute_activity(
                Activities.SWAP_STEP, step, result_type=SwapProgress, start_to_close_timeout=STEP_TIMEOUT
            )
            self.remaining = progress.remaining
            if not progress.remaining:
                break
            workflow.set_current_details(f"Swap {input.swap_id}: {progress.remaining} processes still to move at their next boundary")
            step = SwapStep(input.swap_id, progress.signalled)
            await workflow.sleep(pause)
            pause = min(pause * 2, LAST_CHECK)
        return await workflow.execute_activity(
            Activities.SWAP_FINISH, input.swap_id, result_type=str, start_to_close_timeout=STEP_TIMEOUT
        )

    @workflow.signal
    def dispatch_now(self) -> None:
        """Start now rather than at the scheduled time."""
        self.now = True
