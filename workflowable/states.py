"""The states of processes, workflows and attempts, and the one table of allowed moves.

The enum values are the seeded database ids, so a member can be written to the mirror as it is.
This module is imported by the Temporal workflow and must stay free of I/O.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ProcessStatus(IntEnum):
    """Status of a workflow process; values are `workflow_process_statuses.id`."""

    CREATED = 1  #: written by trigger_event, no Temporal workflow yet
    PENDING = 2  #: waiting until next_run_at (durable timer) for a transition to pass
    DISPATCHED = 3  #: its Temporal workflow was started, no worker has picked it up yet
    RUNNING = 4  #: the workflow is walking the graph
    PAUSED = 5  #: halted by request; no new activity starts
    FAILED = 6  #: an activity exhausted its retry policy
    COMPLETED = 7  #: no outgoing transition remained
    CANCELLED = 8  #: cancelled by request

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    def can_move_to(self, target: ProcessStatus) -> bool:
        return target in TRANSITIONS[self]


S = ProcessStatus

#: Every allowed move, from -> the set of targets. The mirror only ever applies these.
TRANSITIONS: dict[ProcessStatus, frozenset[ProcessStatus]] = {
    # Created or Pending -> Failed: Temporal refused to start the workflow for good.
    S.CREATED: frozenset({S.DISPATCHED, S.PAUSED, S.FAILED, S.CANCELLED}),
    S.PENDING: frozenset({S.DISPATCHED, S.RUNNING, S.PAUSED, S.FAILED, S.CANCELLED}),
    S.DISPATCHED: frozenset({S.RUNNING, S.PENDING, S.PAUSED, S.CANCELLED}),
    S.RUNNING: frozenset({S.PENDING, S.PAUSED, S.FAILED, S.COMPLETED, S.CANCELLED}),
    S.PAUSED: frozenset({S.CREATED, S.PENDING, S.DISPATCHED, S.RUNNING, S.CANCELLED}),
    S.FAILED: frozenset({S.DISPATCHED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL: frozenset[ProcessStatus] = frozenset({S.FAILED, S.COMPLETED, S.CANCELLED})

#: Where a dispatch (a new Temporal workflow run) may start from: not Paused, whose move to
#: Dispatched is a resume. Failed is here because `retry_process` dispatches a new run.
DISPATCHABLE: frozenset[ProcessStatus] = frozenset({S.CREATED, S.PENDING, S.FAILED})

#: What the `process-runs` sweep picks up when due: processes without a live workflow.
SWEPT: frozenset[ProcessStatus] = frozenset({S.CREATED, S.PENDING})

del S


class Request(StrEnum):
    """What a user may ask of a process; the names are the workflow's signal and update names."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"

    def allowed_from(self, status: ProcessStatus) -> bool:
        """Whether the request is valid for a process in `status` (the client checks this first)."""
        if self is Request.PAUSE:
            return status.can_move_to(ProcessStatus.PAUSED) and status is not ProcessStatus.PAUSED
        if self is Request.RESUME:
            return status is ProcessStatus.PAUSED
        if self is Request.CANCEL:
            return not status.is_terminal
        return status is ProcessStatus.FAILED


def sources_of(target: ProcessStatus) -> frozenset[ProcessStatus]:
    """Every status from which `target` may be reached."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


class WorkflowStatus(IntEnum):
    """Status of a workflow definition; values are `workflow_statuses.id`."""

    DRAFT = 1  #: editable, never runs
    ACTIVE = 2  #: triggered by its event, no longer editable
    DEACTIVATED = 3  #: no new processes; live ones run on
    ARCHIVED = 4  #: retired, with no active processes left

    @property
    def label(self) -> str:
        return self.name.capitalize()


class AttemptStatus(IntEnum):
    """Status of one activity attempt; values are `workflow_process_activity_log_statuses.id`."""

    IN_PROGRESS = 1
    SUCCESS = 2
    FAILURE = 3

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").title()


class SwapStatus(IntEnum):
    """Status of a workflow swap; values are `workflow_swap_statuses.id`."""

    DRAFT = 1  #: created, its activity map editable
    SCHEDULED = 2  #: will start at scheduled_at
    DISPATCHED = 3  #: started; processes of both workflows are held back from dispatch
    PROCESSING = 4  #: moving the old workflow's live processes onto the new one
    COMPLETED = 5  #: every live process moved; the held-back processes dispatched

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def holds_dispatch(self) -> bool:
        """While a swap runs, new processes of either workflow wait to be dispatched."""
        return self in (SwapStatus.DISPATCHED, SwapStatus.PROCESSING)
