"""What the process state machine asks of the workflow: its *effects*, and the phase a run is
in between two events.

The machine (machine.py) queues effects; the workflow's effect runner (effect_runner.py) carries
each out (a mirror write, an attempt, a timer, a signal to the lock key, ...) and answers with
the event its docstring names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from ..states import ProcessStatus
from .messages import ActivityStep, TransitionStep
from .status_track import Write


class Phase(Enum):
    """What the process is doing between two events."""

    IDLE = "idle"  #: at a boundary: paused, or waiting for a write before it goes on
    BEGINNING = "beginning"  #: writing the run's begin, which its first attempt could not
    CHOOSING = "choosing"  #: a condition check in flight
    LOCKING = "locking"  #: waiting for its lock key
    ATTEMPT = "attempt"  #: an attempt in flight
    BACKOFF = "backoff"  #: a timer before the next attempt of a step
    WAITING = "waiting"  #: Pending: a timer before the next check of the transitions
    MOVING = "moving"  #: a swap moving it onto another workflow
    CONTINUING = "continuing"  #: about to continue as new, once every handler has finished
    ENDED = "ended"


@dataclass(frozen=True)
class Begin:
    """Write the run's begin (Running), which its first attempt did not (its worker died
    first); answered by `begun` with the status the mirror shows."""


@dataclass(frozen=True)
class Choose:
    """Check these transitions' conditions and deadlines, in order, with the tokens of the first
    `deliveries` deliveries and any later ones the mirror has; answered by `chosen_is`."""

    transitions: tuple[TransitionStep, ...]
    deliveries: int = 0
    waited: timedelta = timedelta(0)  #: at the position so far
    cause: str = ""  #: why it checks now (a `Cause`), for the mirror's record of the check


@dataclass(frozen=True)
class RunAttempt:
    """Run one attempt of a step; answered by `attempt_succeeded`, `attempt_failed`, `attempt_cancelled` or `not_begun`."""

    activity: ActivityStep
    step: int
    attempt: int
    then_check: tuple[TransitionStep, ...]  #: conditions the attempt checks as it succeeds
    completes: bool  #: no transition leaves the activity: its Success write completes the process
    begins_run: bool  #: it writes the run's begin first (the plan came with the input)


@dataclass(frozen=True)
class CancelAttempt:
    """Ask the attempt in flight to stop (it reports how it ended)."""

    by_mirror: bool = False  #: the mirror showed Cancelled by itself (runs begun before did not stop then)


@dataclass(frozen=True)
class CloseAttempt:
    """Close an attempt its worker could not close (it timed out) as a Failure."""

    activity_id: int
    step: int
    attempt: int
    error: str


@dataclass(frozen=True)
class StartTimer:
    """Fire `timer_fired(timer)` at `at`."""

    timer: int
    at: datetime
    phase: Phase  #: what the timer ends (a wait for the next check, or a retry's backoff), for the web UI


@dataclass(frozen=True)
class CancelTimer:
    timer: int


@dataclass(frozen=True)
class AskLock:
    """Join the lock key's queue; answered by `granted`."""


@dataclass(frozen=True)
class ReleaseLock:
    generation: int


@dataclass(frozen=True)
class WithdrawLock:
    """Leave the lock key's queue."""


@dataclass(frozen=True)
class Move:
    """Move onto the swap's new workflow; answered by `moved`."""

    swap_id: int


@dataclass(frozen=True)
class ContinueAsNew:
    """End this run and start the next with `Machine.carried()`, once no handler is running."""


@dataclass(frozen=True)
class Finish:
    """End the run: the process is `status` in the mirror. `moved`: a swap ended it."""

    status: ProcessStatus
    error: str | None = None
    moved: bool = False


Effect = Write | Begin | Choose | RunAttempt | CancelAttempt | CloseAttempt | StartTimer | CancelTimer | AskLock | ReleaseLock | WithdrawLock | Move | ContinueAsNew | Finish
