"""The process state machine: every status move of a running process is decided here, and only here.

`Machine` holds where a process stands and takes one event at a time (a request, an attempt's
end, a mirror write's answer, a timer, a lock grant, ...); each event may change its state and
queue *effects* for the workflow to carry out (write a status, run an attempt, start a timer,
ask for the lock key, continue as new, finish). It does no I/O and knows nothing of Temporal:
the workflow (process.py) turns handlers and Temporal outcomes into events and effects into
activities, timers and signals. Its tests run every state against every event without a server.

Two parts keep their own books: the walk (walk.py), where the process is in its graph and which
step comes next there, and the status track (status_track.py), the status wanted, the one the
mirror shows, the write between them and the requests waiting for it. The machine decides with
both: requests, the run's phase, the lock key, timers and when each step may start.

The rules that make requests safe whatever their timing:

- A request is checked against the machine's status and applied at once: its status is what
  the machine wants the mirror to show, and the request's caller is answered once the mirror
  shows it. Nothing else the machine does waits on the request's moment.
- New work (an attempt, a condition check, a timer, a move) starts only at a *boundary*: no
  attempt or check in flight, the mirror showing the status the work runs under, not paused,
  no cancel accepted. An attempt in flight is never interrupted by a pause (it ends, no later
  step starts); a cancel asks it to stop, and whatever it reports (a Success is kept) ends the
  process Cancelled.
- The mirror is the arbiter of one race the workflow cannot see: the last activity's Success
  write completes the process in the same statement, if the mirror shows Running. A request's
  write that the mirror refuses because it moved on (Completed) is answered "too late", and the
  machine takes the mirror's status.
- Writes go one at a time; each is a move the transition table allows from the last one written.
- A pause or cancel whose effect the mirror shows by itself is done, not refused: its write may
  have outrun a workflow task the server lost, which delivers the request again
  (StatusTrack.shown_by_mirror).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from ..states import ProcessStatus, Request
from .messages import ActivityOutput, ActivityStep, Carried, Cause, Delivery, ProcessPlan, TransitionStep
from .status_track import Refused, StatusTrack, Write
from .walk import Check, Complete, Fail, Run, Wait, Walk

S = ProcessStatus


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


# Effects: what the workflow carries out for the machine.


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


@dataclass
class Machine:
    """A process's run; every method named after an event takes that event. Where the process is
    in its graph, and which step comes next there, is its `walk`'s."""

    plan: ProcessPlan
    track: StatusTrack  #: its status, the mirror's, the write between them, the requests waiting
    walk: Walk
    paused_from: ProcessStatus | None = None
    cancel_requested: bool = False
    begins_run: bool = False  #: the next attempt writes the run's begin (the plan came with the input)
    next_run_at: datetime | None = None
    phase: Phase = Phase.IDLE
    swap_id: int | None = None
    lock_generation: int | None = None  #: the lock key, held under this generation
    lock_asked: bool = False
    checks: int = 0  #: checks of the transitions after a wait, in this run
    now: datetime = datetime.min
    continue_suggested: bool = False  #: Temporal says this run's history is long
    error: str | None = None
    timer: int = 0  #: the current timer's number (a fired timer with another number is stale)
    attempt: RunAttempt | None = None  #: the attempt in flight
    cancel_sent: bool = False
    effects: list[Effect] = field(default_factory=list)

    @classmethod
    def begin(cls, plan: ProcessPlan, status: ProcessStatus, *, now: datetime, begins_run: bool = False) -> Machine:
        """A run that has read its plan (or was given it: `begins_run`, the mirror shows Running
        once its first attempt has written the begin)."""
        walk = Walk(plan, plan.position, dict(plan.tokens), plan.steps_taken, plan.deliveries, plan.arrived_at or now)
        machine = cls(plan, StatusTrack(status, status), walk, begins_run=begins_run, now=now)
        if status is S.PAUSED:  # paused through the mirror before the run began
            machine.paused_from = S.RUNNING
        machine._advance()
        return machine

    @classmethod
    def resume_carried(cls, plan: ProcessPlan, carried: Carried, *, now: datetime) -> Machine:
        """The first state of a run that continued as new: as the last run left it, due a check."""
        status = S(carried.status)
        walk = Walk(
            plan, carried.position, dict(carried.tokens), carried.steps_taken, carried.deliveries, carried.arrived_at or now,
            wait_until=carried.wait_until, check_cause=Cause.CONTINUED,
        )
        machine = cls(plan, StatusTrack(status, status), walk, now=now)
        machine._advance()
        return machine

    def carried(self) -> Carried:
        walk = self.walk
        return Carried(int(self.status), walk.position, dict(walk.tokens), walk.steps_taken, walk.wait_until, walk.deliveries, walk.arrived_at)

    def take_effects(self) -> list[Effect]:
        effects, self.effects = self.effects, []
        return effects

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    @property
    def status(self) -> ProcessStatus:
        """The status the process is in (the mirror shows it once written)."""
        return self.track.status

    @property
    def written(self) -> ProcessStatus:
        """The status the mirror shows, as far as the workflow knows."""
        return self.track.written

    # Requests

    def refusal(self, request: Request) -> Refused | None:
        """Why `request` cannot be accepted now (None: it can, or it is done already)."""
        return None if self._done_by_mirror(request) else self._refused(request)

    def _done_by_mirror(self, request: Request) -> bool:
        """The mirror shows the request's effect by itself (see StatusTrack.shown_by_mirror),
        and no cancel is under way that would end the process otherwise."""
        return not self.cancel_requested and self.track.shown_by_mirror(request)

    def _refused(self, request: Request) -> Refused | None:
        if self.phase is Phase.ENDED or self.status.is_terminal or not request.allowed_from(self.status):
            return Refused(self.status)
        return None

    def request(self, request: Request) -> int:
        """A pause, resume or cancel (checked or not): returns a ticket; `answer` tells when it took effect."""
        if self._done_by_mirror(request):
            return self.track.issue(request, settled=True)
        refused = self._refused(request)
        if refused is not None:
            return self.track.issue(request, answer=refused, settled=True)
        if request is Request.PAUSE:
            self.paused_from = self.status
            self.track.set(S.PAUSED)
            self._stop_waiting()
        elif request is Request.RESUME:
            # Back where it was; a process that let go of its key while paused waits for it
            # again in that status (Running -> Dispatched is no move of the table).
            target = self.paused_from or S.RUNNING
            self.paused_from = None
            self.track.set(target)
            self.walk.check_now(Cause.RESUMED)  # a resumed process checks its transitions at once
        else:
            self._cancel()
        ticket = self.track.issue(request)
        self._advance()
        return ticket

    def cancelled_by_temporal(self) -> None:
        """The workflow was cancelled (the web UI, `temporal workflow cancel`): as a cancel request."""
        if self._refused(Request.CANCEL) is None:
            self._cancel()
            self._advance()

    def answer(self, ticket: int) -> tuple[bool, Refused | None]:
        """(settled, refusal): whether the ticket's request has been answered, and if so how."""
        return self.track.answer(ticket)

    def forget(self, ticket: int) -> None:
        self.track.forget(ticket)

    def _cancel(self) -> None:
        self.cancel_requested = True
        self.paused_from = None
        self.track.set(S.CANCELLED)
        self.swap_id = None  # a process being cancelled stays cancelled
        self._stop_waiting()
        if self.phase is Phase.ATTEMPT and not self.cancel_sent:
            self.cancel_sent = True
            self.effects.append(CancelAttempt())

    def _stop_waiting(self) -> None:
        """A request came: a timer or a place in the lock's queue no longer holds the process."""
        if self.phase in (Phase.WAITING, Phase.BACKOFF):
            self.effects.append(CancelTimer(self.timer))
            self.phase = Phase.IDLE
        elif self.phase is Phase.LOCKING:
            self.phase = Phase.IDLE  # the boundary withdraws from the queue
        elif self.phase is Phase.CONTINUING:
            self.phase = Phase.IDLE

    # Other signals

    def wake(self) -> None:
        """Check the transitions now rather than at the end of the wait."""
        self.walk.check_now(Cause.WOKEN)
        if self.phase is Phase.WAITING:
            self.effects.append(CancelTimer(self.timer))
            self.phase = Phase.IDLE
        self._advance()

    def delivered(self, delivery: Delivery) -> None:
        """An event was delivered: checked at the next boundary, at once if the process waits (a
        paused one checks as it resumes)."""
        if self.phase is Phase.ENDED or not self.walk.delivered(delivery):
            return
        if self.phase in (Phase.ATTEMPT, Phase.CHOOSING):
            self.walk.delivered_meanwhile = True
        elif self.phase is Phase.WAITING:
            self.effects.append(CancelTimer(self.timer))
            self.phase = Phase.IDLE
        self._advance()

    def swap(self, swap_id: int) -> None:
        """Move onto a swap's new workflow at the next boundary (between attempts, while waiting or paused)."""
        if self.swap_id is None and not self.cancel_requested and not self.status.is_terminal:
            self.swap_id = swap_id
            self._stop_waiting()
            self._advance()

    def granted(self, generation: int) -> None:
        if self.lock_asked and self.phase is Phase.LOCKING:
            self.lock_asked, self.lock_generation = False, generation
            self.phase = Phase.IDLE
            self._advance()
        else:  # it stopped waiting meanwhile: hand the key straight back
            self.effects.append(ReleaseLock(generation))

    def lost(self, generation: int) -> None:
        """The lease ran out (the workflow did not renew in time): it asks again before its next attempt."""
        if generation == self.lock_generation:
            self.lock_generation = None

    # Outcomes of effects

    def written_as(self, status_now: ProcessStatus) -> None:
        """The mirror's answer to the write in flight: the status it shows now."""
        if not self.track.written_as(status_now):
            self._as_in_mirror(status_now)
        self._settle()
        self._advance()

    def chosen_is(self, transition_id: int | None, caught_up: tuple[Delivery, ...] = ()) -> None:
        """The check's outcome; `caught_up`: deliveries it read from the mirror, checked with."""
        assert self.phase is Phase.CHOOSING
        self.phase = Phase.IDLE
        self.walk.chosen_is(transition_id, caught_up, may_go_on=self._may_go_on())
        self._advance()

    def attempt_succeeded(self, output: ActivityOutput) -> None:
        attempt = self._attempt_ended()
        self.begins_run = False  # the begin is written (a failed attempt may have died before it)
        self.walk.succeeded(attempt.activity, output, self.now)
        if output.completed:  # the Success write completed the process (the mirror showed Running)
            self._as_in_mirror(S.COMPLETED)
            self._settle()
        self._advance()

    def attempt_failed(self, error: str, *, retryable: bool, timed_out: bool = False) -> None:
        attempt = self._attempt_ended()
        if timed_out:  # the worker died or hung: its row is still In Progress
            self.effects.append(CloseAttempt(attempt.activity.id, attempt.step, attempt.attempt, error))
        if not self.cancel_requested:
            backoff = self.walk.failed(attempt.activity, attempt.attempt, error, retryable=retryable)
            if backoff is not None and self._may_go_on():
                self._start_timer(self.now + backoff, Phase.BACKOFF)
        self._advance()

    def attempt_cancelled(self, error: str) -> None:
        """The attempt stopped on a cancel: this process's, or its worker's shutdown (then it is retried)."""
        if self.cancel_requested:
            self._attempt_ended()
            self._advance()
        else:
            self.attempt_failed(error, retryable=True)

    def not_begun(self, status: ProcessStatus) -> None:
        """The first attempt found the process paused or ended through the mirror before its run
        could begin; nothing ran, nothing was written. The process takes that status."""
        attempt = self._attempt_ended()
        self.begins_run = False
        self.walk.not_begun(attempt.activity, attempt.attempt)
        if self.track.writing is not None and not status.is_terminal:
            pass  # the write in flight was made after what the begin saw: its answer tells the mirror's status
        else:
            if status is S.PAUSED and not self.status.is_terminal:
                self.paused_from = S.RUNNING
            self._as_in_mirror(status)
            self._settle()
        self._advance()

    def begun(self, status_now: ProcessStatus) -> None:
        assert self.phase is Phase.BEGINNING
        self.phase = Phase.IDLE
        self.begins_run = False
        if status_now is not self.written:
            self._as_in_mirror(status_now)
            self._settle()
        self._advance()

    def timer_fired(self, timer: int) -> None:
        if timer != self.timer or self.phase not in (Phase.WAITING, Phase.BACKOFF):
            return  # cancelled meanwhile
        if self.phase is Phase.WAITING:
            self.walk.check_now(Cause.DEADLINE if self.next_run_at in self.walk.deadlines(self.now) else Cause.RETRY_INTERVAL)
        self.phase = Phase.IDLE
        self._advance()

    def moved(self, new_process_id: int | None) -> None:
        assert self.phase is Phase.MOVING
        self.phase = Phase.IDLE
        self.swap_id = None
        if new_process_id is not None:  # the move itself wrote Cancelled
            self.track.mark_written(S.CANCELLED)
            self._settle()
            self._end(Finish(S.CANCELLED, moved=True))
            return
        self._advance()

    # The boundary: what to do next

    def _may_go_on(self) -> bool:
        return self.status is not S.PAUSED and not self.cancel_requested and self.swap_id is None and not self.status.is_terminal

    def _advance(self) -> None:
        """At every event's end: start what the process does next, if it is at a boundary."""
        if self.phase is Phase.ENDED:
            return
        self._flush()
        if self.phase is Phase.IDLE and (self.status is S.PAUSED or self.cancel_requested):
            self._let_go_of_lock()  # at once, not after the write: others may be waiting for the key
        if self.phase is not Phase.IDLE or self.track.writing is not None:
            return  # something is in flight: its outcome is the next event
        if self.status.is_terminal and self.status is self.written and not self.cancel_requested:
            self._end(Finish(self.status, self.error))  # completed by its last Success write, or ended through the mirror
            return
        if self.cancel_requested:
            if self.written is S.CANCELLED or self.written.is_terminal:
                self._end(Finish(self.written))
            return  # the Cancelled write is in flight
        if self.swap_id is not None:
            self._let_go_of_lock()
            self.phase = Phase.MOVING
            self.effects.append(Move(self.swap_id))
            return
        if self.status is S.PAUSED:
            self._let_go_of_lock()
            return
        match self.walk.next_step():
            case Run(activity, attempt):
                self._run(activity, attempt)
            case Check(transitions):
                if self.checks >= self.plan.checks_per_run or (self.continue_suggested and self.checks > 0):
                    self._continue_as_new()
                else:
                    self.phase = Phase.CHOOSING
                    walk = self.walk
                    self.effects.append(Choose(transitions, walk.deliveries, walk.waited(self.now), walk.check_cause))
            case Wait():
                self._wait()
            case Fail() | Complete() as end:  # each reached from Running only
                self._let_go_of_lock()
                if self._running_first():
                    if isinstance(end, Fail):
                        self.error = self.walk.take_failure()
                    self._move_to(S.FAILED if isinstance(end, Fail) else S.COMPLETED)

    def _run(self, activity: ActivityStep, attempt: int) -> None:
        """Run an attempt: with the lock key if the process has one, and Running in the mirror first."""
        if self.plan.lock_key and self.lock_generation is None:
            if self.status is S.PENDING:
                self._move_to(S.DISPATCHED)  # while it waits for its key
                return
            if not self.lock_asked:
                self.lock_asked = True
                self.effects.append(AskLock())
            self.phase = Phase.LOCKING
            return
        if self.status is not S.RUNNING:
            self._move_to(S.RUNNING)
            return
        step, then_check, completes = self.walk.attempt(activity, attempt)
        self.attempt = RunAttempt(activity, step, attempt, then_check, completes, self.begins_run)
        self.phase = Phase.ATTEMPT
        self.effects.append(self.attempt)

    def _running_first(self) -> bool:
        """Completed and Failed are reached from Running only: a process the mirror shows
        otherwise (its begin was never written: the worker of its first attempt died) is
        written Running first. True if it is Running."""
        if self.begins_run:  # only the begin moves a process from Created, and records its run
            self.phase = Phase.BEGINNING
            self.effects.append(Begin())
            return False
        if self.status is S.RUNNING:
            return True
        self._move_to(S.RUNNING)
        return False

    def _wait(self) -> None:
        """No transition passes: Pending until the next check (see `Walk.next_check_at`)."""
        self._let_go_of_lock()
        self.next_run_at = self.walk.next_check_at(self.now)
        self.checks += 1
        self.track.set(S.PENDING)
        self._flush()
        self._start_timer(self.next_run_at, Phase.WAITING)

    def _continue_as_new(self) -> None:
        self._let_go_of_lock()
        self.phase = Phase.CONTINUING
        self.effects.append(ContinueAsNew())

    def _start_timer(self, at: datetime, phase: Phase) -> None:
        self.timer += 1
        self.phase = phase
        self.effects.append(StartTimer(self.timer, at, phase))

    def _let_go_of_lock(self) -> None:
        if self.lock_generation is not None:
            self.effects.append(ReleaseLock(self.lock_generation))
            self.lock_generation = None
        if self.lock_asked:
            self.lock_asked = False
            self.effects.append(WithdrawLock())

    def _end(self, finish: Finish) -> None:
        self._let_go_of_lock()
        if self.phase in (Phase.WAITING, Phase.BACKOFF):
            self.effects.append(CancelTimer(self.timer))
        self.phase = Phase.ENDED
        self.effects.append(finish)
        self._settle()

    def _attempt_ended(self) -> RunAttempt:
        assert self.phase is Phase.ATTEMPT and self.attempt is not None
        attempt, self.attempt = self.attempt, None
        self.phase = Phase.IDLE
        self.cancel_sent = False
        return attempt

    # Status moves and the mirror

    def _move_to(self, status: ProcessStatus) -> None:
        """A move of the process's own (not a request's); it goes on once the mirror shows it."""
        self.track.set(status)
        self._flush()

    def _flush(self) -> None:
        """Write the status wanted, if the mirror does not show it and no write is in flight."""
        status = self.status
        desired = Write(
            status,
            next_run_at=self.next_run_at if status is S.PENDING else None,
            error=self.error if status is S.FAILED else None,
            paused_from=self.paused_from if status is S.PAUSED else None,
        )
        write, caught_up = self.track.next_write(desired)
        if write is not None:
            self.effects.append(write)
        elif caught_up:
            self._settle()

    def _as_in_mirror(self, status: ProcessStatus) -> None:
        """The mirror shows `status`, which the workflow did not write (the last Success write
        completed the process, or it was paused or ended through the mirror): the process takes
        it; requests not yet written are answered with it."""
        if status.is_terminal:
            self.cancel_requested = self.cancel_requested and status is S.CANCELLED
            self.swap_id = None
            self.walk.stop()
        if status is S.CANCELLED and self.phase is Phase.ATTEMPT and not self.cancel_sent:
            self.cancel_sent = True  # as a cancel request does: the run ends once the attempt has stopped
            self.effects.append(CancelAttempt(by_mirror=True))
        self.track.take(status)
        if status is not S.PAUSED:
            self.paused_from = None

    def _settle(self) -> None:
        """Answer the requests the mirror now shows."""
        self.track.settle(stopped=self.phase is Phase.ENDED)
