"""The process state machine: every status move of a running process is decided here, and only here.

`Machine` holds where a process stands and takes one event at a time (a request, an attempt's
end, a mirror write's answer, a timer, a lock grant, ...); each event may change its state and
queue *effects* for the workflow to carry out (write a status, run an attempt, start a timer,
ask for the lock key, continue as new, finish). It does no I/O and knows nothing of Temporal:
the workflow (process.py) turns handlers and Temporal outcomes into events and effects into
activities, timers and signals. Its tests run every state against every event without a server.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from ..states import ProcessStatus, Request
from .messages import ActivityOutput, ActivityStep, Carried, Cause, Delivery, ProcessPlan, TransitionStep

S = ProcessStatus

#: The workflow drives retries (so that no attempt starts while paused); backoff doubles up to this.
MAX_BACKOFF = timedelta(minutes=10)


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
class Write:
    """Write this status to the mirror; answered by `written`."""

    status: ProcessStatus
    next_run_at: datetime | None = None
    error: str | None = None
    paused_from: ProcessStatus | None = None


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


@dataclass(frozen=True)
class Refused:
    """A request's answer when it did not take effect: the process is `status`."""

    status: ProcessStatus


@dataclass
class _Ticket:
    request: Request
    version: int  #: the status version that carries it
    answer: Refused | None = None
    settled: bool = False


def _shows(request: Request, status: ProcessStatus) -> bool:
    """Whether a process in `status` shows that `request` took effect."""
    if request is Request.PAUSE:
        return status is S.PAUSED
    if request is Request.CANCEL:
        return status is S.CANCELLED
    return status is not S.PAUSED and not status.is_terminal


def to_check(outgoing: list[TransitionStep]) -> list[TransitionStep]:
    """The transitions to check, in order: up to the first that always passes (no condition, no deadline)."""
    checked: list[TransitionStep] = []
    for transition in outgoing:
        checked.append(transition)
        if transition.always:
            break
    return checked


@dataclass
class Machine:
    """A process's state; every method named after an event takes that event."""

    plan: ProcessPlan
    status: ProcessStatus
    #: the status the mirror shows, as far as the workflow knows (and the Pending time written)
    written: ProcessStatus
    position: int | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    steps_taken: int = 0
    paused_from: ProcessStatus | None = None
    cancel_requested: bool = False
    begins_run: bool = False  #: the next attempt writes the run's begin (the plan came with the input)
    wait_until: datetime | None = None
    next_run_at: datetime | None = None
    phase: Phase = Phase.IDLE
    check_due: bool = True  #: the transitions must be checked before the process may wait
    check_cause: str = Cause.BEGAN  #: why (a `Cause`)
    chosen: TransitionStep | None = None  #: a transition passed; its activity runs next
    #: conditions the last attempt checked as it succeeded, for its position: (chosen id or None)
    prechecked: tuple[int | None] | None = None
    retrying: tuple[ActivityStep, int] | None = None  #: a step to try again: (its activity, next attempt)
    failing: str | None = None  #: the step failed for good; Failed once not paused
    swap_id: int | None = None
    lock_generation: int | None = None  #: the lock key, held under this generation
    lock_asked: bool = False
    checks: int = 0  #: checks of the transitions after a wait, in this run
    now: datetime = datetime.min
    continue_suggested: bool = False  #: Temporal says this run's history is long
    # Status versions: each move bumps `version`; the mirror has taken up to `written_version`.
    version: int = 0
    written_version: int = 0
    writing: Write | None = None
    writing_version: int = 0  #: the version the write in flight carries
    written_next_run_at: datetime | None = None
    error: str | None = None
    timer: int = 0  #: the current timer's number (a fired timer with another number is stale)
    attempt: RunAttempt | None = None  #: the attempt in flight
    cancel_sent: bool = False
    deliveries: int = 0  #: events delivered whose fields `tokens` holds
    arrived_at: datetime | None = None  #: when the process reached its position (deadlines count from then)
    #: an event was delivered while an attempt or a check was in flight: its outcome is stale
    delivered_meanwhile: bool = False
    effects: list[Effect] = field(default_factory=list)
    tickets: dict[int, _Ticket] = field(default_factory=dict)
    next_ticket: int = 1

    @classmethod
    def begin(cls, plan: ProcessPlan, status: ProcessStatus, *, now: datetime, begins_run: bool = False) -> Machine:
        """A run that has read its plan (or was given it: `begins_run`, the mirror shows Running
        once its first attempt has written the begin)."""
        machine = cls(plan, status, status, plan.position, dict(plan.tokens), plan.steps_taken, begins_run=begins_run, now=now)
        machine.deliveries, machine.arrived_at = plan.deliveries, plan.arrived_at or now
        if status is S.PAUSED:  # paused through the mirror before the run began
            machine.paused_from = S.RUNNING
        machine._advance()
        return machine

    @classmethod
    def resume_carried(cls, plan: ProcessPlan, carried: Carried, *, now: datetime) -> Machine:
        """The first state of a run that continued as new: as the last run left it, due a check."""
        status = S(carried.status)
        machine = cls(plan, status, status, carried.position, dict(carried.tokens), carried.steps_taken, wait_until=carried.wait_until, now=now)
        machine.deliveries, machine.arrived_at = carried.deliveries, carried.arrived_at or now
        machine.check_cause = Cause.CONTINUED
        machine._advance()
        return machine

    def carried(self) -> Carried:
        return Carried(int(self.status), self.position, dict(self.tokens), self.steps_taken, self.wait_until, self.deliveries, self.arrived_at)

    def take_effects(self) -> list[Effect]:
        effects, self.effects = self.effects, []
        return effects

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    # Requests

    def refusal(self, request: Request) -> Refused | None:
        """Why `request` cannot be accepted now (None: it can)."""
        if self.phase is Phase.ENDED or self.status.is_terminal or not request.allowed_from(self.status):
            return Refused(self.status)
        return None

    def request(self, request: Request) -> int:
        """A pause, resume or cancel (checked or not): returns a ticket; `answer` tells when it took effect."""
        ticket = self.next_ticket
        self.next_ticket += 1
        refused = self.refusal(request)
        if refused is not None:
            self.tickets[ticket] = _Ticket(request, self.version, refused, settled=True)
            return ticket
        if request is Request.PAUSE:
            self.paused_from = self.status
            self._set(S.PAUSED)
            self._stop_waiting()
        elif request is Request.RESUME:
            # Back where it was; a process that let go of its key while paused waits for it
            # again in that status (Running -> Dispatched is no move of the table).
            target = self.paused_from or S.RUNNING
            self.paused_from = None
            self._set(target)
            self._check_now(Cause.RESUMED)  # a resumed process checks its transitions at once
        else:
            self._cancel()
        self.tickets[ticket] = _Ticket(request, self.version)
        self._advance()
        return ticket

    def cancelled_by_temporal(self) -> None:
        """The workflow was cancelled (the web UI, `temporal workflow cancel`): as a cancel request."""
        if self.refusal(Request.CANCEL) is None:
            self._cancel()
            self._advance()

    def answer(self, ticket: int) -> tuple[bool, Refused | None]:
        """(settled, refusal): whether the ticket's request has been answered, and if so how."""
        entry = self.tickets[ticket]
        return entry.settled, entry.answer

    def forget(self, ticket: int) -> None:
        self.tickets.pop(ticket, None)

    def _cancel(self) -> None:
        self.cancel_requested = True
        self.paused_from = None
        self._set(S.CANCELLED)
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
        self._check_now(Cause.WOKEN)
        if self.phase is Phase.WAITING:
            self.effects.append(CancelTimer(self.timer))
            self.phase = Phase.IDLE
        self._advance()

    def delivered(self, delivery: Delivery) -> None:
        """An event was delivered (the process's `seq`th): its fields are tokens now, and the
        transitions are checked at the next boundary, at once if the process waits (a paused one
        checks as it resumes). One that skips a delivery the workflow has not heard of is read,
        with that one, from the mirror by the check."""
        if delivery.seq <= self.deliveries or self.phase is Phase.ENDED:
            return  # heard of already (a signal sent again, or read by a check)
        if delivery.seq == self.deliveries + 1:
            self.tokens.update(delivery.tokens)
            self.deliveries = delivery.seq
        self._check_now(Cause.DELIVERED)
        self.prechecked = None  # the last attempt's check, made without the event's fields
        if self.phase in (Phase.ATTEMPT, Phase.CHOOSING):
            self.delivered_meanwhile = True
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
        assert self.writing is not None
        write, self.writing = self.writing, None
        if status_now is write.status:
            self.written = status_now
            self.written_next_run_at = write.next_run_at
            self.written_version = self.writing_version
        else:
            self._as_in_mirror(status_now)
        self._settle()
        self._advance()

    def chosen_is(self, transition_id: int | None, caught_up: tuple[Delivery, ...] = ()) -> None:
        """The check's outcome; `caught_up`: deliveries it read from the mirror, checked with."""
        assert self.phase is Phase.CHOOSING
        self.phase = Phase.IDLE
        self.check_due = False
        for delivery in caught_up:
            if delivery.seq == self.deliveries + 1:
                self.tokens.update(delivery.tokens)
                self.deliveries = delivery.seq
        stale, self.delivered_meanwhile = self.delivered_meanwhile, False
        if transition_id is not None and self._may_go_on():
            self.chosen = self._transition(transition_id)
        elif transition_id is None:
            self.chosen = None
            if stale:  # an event came meanwhile: check again with it
                self._check_now(Cause.DELIVERED)
        else:  # paused, cancelled or moving meanwhile: it checks again when it goes on
            self.check_due = True
        self._advance()

    def attempt_succeeded(self, output: ActivityOutput) -> None:
        attempt = self._attempt_ended()
        self.begins_run = False  # the begin is written (a failed attempt may have died before it)
        self.retrying = None
        self.tokens.update(output.outputs)
        self.position = attempt.activity.id
        self.arrived_at = self.now
        self.wait_until = output.wait_until
        # Checked as it succeeded, unless an event came meanwhile (checked without its fields).
        checked, self.delivered_meanwhile = output.checked and not self.delivered_meanwhile, False
        self.prechecked = (output.chosen,) if checked else None
        self.check_due = not checked
        self.check_cause = Cause.DELIVERED if output.checked and not checked else Cause.SUCCEEDED
        if output.completed:  # the Success write completed the process (the mirror showed Running)
            self._as_in_mirror(S.COMPLETED)
            self._settle()
        self._advance()

    def attempt_failed(self, error: str, *, retryable: bool, timed_out: bool = False) -> None:
        attempt = self._attempt_ended()
        if timed_out:  # the worker died or hung: its row is still In Progress
            self.effects.append(CloseAttempt(attempt.activity.id, attempt.step, attempt.attempt, error))
        if not self.cancel_requested:
            if retryable and attempt.attempt < attempt.activity.max_attempts:
                self.retrying = (attempt.activity, attempt.attempt + 1)
                if self._may_go_on():
                    backoff = timedelta(seconds=self.plan.retry_backoff_seconds) * 2 ** (attempt.attempt - 1)
                    self._start_timer(self.now + min(backoff, MAX_BACKOFF), Phase.BACKOFF)
            else:
                self.retrying = None
                self.failing = error
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
        self.steps_taken -= 1
        self.retrying = (attempt.activity, attempt.attempt)  # it runs when the process goes on
        if self.writing is not None and not status.is_terminal:
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
            self._check_now(Cause.DEADLINE if self.next_run_at in self.deadlines() else Cause.RETRY_INTERVAL)
        self.phase = Phase.IDLE
        self._advance()

    def moved(self, new_process_id: int | None) -> None:
        assert self.phase is Phase.MOVING
        self.phase = Phase.IDLE
        self.swap_id = None
        if new_process_id is not None:  # the move itself wrote Cancelled
            self.status = self.written = S.CANCELLED
            self.version += 1
            self.written_version = self.version
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
        if self.phase is not Phase.IDLE or self.writing is not None:
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
        if self.failing is not None:
            self._let_go_of_lock()
            if self._running_first():
                self.error, self.failing = self.failing, None
                self._move_to(S.FAILED)
            return
        if self.retrying is not None:
            activity, attempt = self.retrying
            self._run(activity, attempt)
            return
        if self.chosen is not None:
            self._run(self._activity(self.chosen.to_activity_id), 1)
            return
        outgoing = [t for t in self.plan.transitions if t.from_activity_id == self.position]
        if not outgoing:
            self._let_go_of_lock()
            if self._running_first():
                self._move_to(S.COMPLETED)
            return
        checked = to_check(outgoing)
        if checked[0].always:
            self.chosen = checked[0]
        elif self.prechecked is not None:
            (chosen_id,), self.prechecked = self.prechecked, None
            self.check_due = False
            self.chosen = None if chosen_id is None else self._transition(chosen_id)
        elif self.check_due:
            if self.checks >= self.plan.checks_per_run or (self.continue_suggested and self.checks > 0):
                self._continue_as_new()
                return
            self.phase = Phase.CHOOSING
            self.effects.append(Choose(tuple(checked), self.deliveries, self._waited(), self.check_cause))
            return
        if self.chosen is not None:
            self._advance()
            return
        self._wait()

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
        if attempt == 1:
            self.steps_taken += 1
        leaving = [t for t in self.plan.transitions if t.from_activity_id == activity.id]
        then_check = tuple(to_check(leaving)) if leaving and not leaving[0].always else ()
        self.chosen = None
        self.prechecked = None
        self.attempt = RunAttempt(activity, self.steps_taken, attempt, then_check, not leaving, self.begins_run)
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

    def _check_now(self, cause: str) -> None:
        self.check_due, self.check_cause = True, cause

    def deadlines(self) -> list[datetime]:
        """When the deadlines of the transitions leaving the position come."""
        arrived = self.arrived_at or self.now
        outgoing = [t for t in self.plan.transitions if t.from_activity_id == self.position]
        return [arrived + timedelta(seconds=t.after_seconds) for t in outgoing if t.after_seconds is not None]

    def _waited(self) -> timedelta:
        return self.now - (self.arrived_at or self.now)

    def _wait(self) -> None:
        """No transition passes: Pending until the retry interval (or the activity's wait_until)
        ends, or the earliest deadline still ahead comes, whichever is first."""
        self._let_go_of_lock()
        interval = timedelta(seconds=self.plan.retry_interval_seconds)
        self.next_run_at = max(self.now + interval, self.wait_until or self.now)
        ahead = [deadline for deadline in self.deadlines() if deadline > self.now]
        if ahead:
            self.next_run_at = min(self.next_run_at, min(ahead))
        self.wait_until = None
        self.checks += 1
        self._set(S.PENDING)
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

    # Status moves and the mirror

    def _set(self, status: ProcessStatus) -> None:
        self.status = status
        self.version += 1

    def _move_to(self, status: ProcessStatus) -> None:
        """A move of the process's own (not a request's); it goes on once the mirror shows it."""
        self._set(status)
        self._flush()

    def _desired(self) -> Write:
        status = self.status
        return Write(
            status,
            next_run_at=self.next_run_at if status is S.PENDING else None,
            error=self.error if status is S.FAILED else None,
            paused_from=self.paused_from if status is S.PAUSED else None,
        )

    def _flush(self) -> None:
        """Write the status wanted, if the mirror does not show it and no write is in flight."""
        if self.writing is not None:
            return
        desired = self._desired()
        if desired.status is self.written and (desired.status is not S.PENDING or desired.next_run_at == self.written_next_run_at):
            if self.written_version < self.version:
                self.written_version = self.version  # toggled back to what the mirror shows
                self._settle()
            return
        self.writing, self.writing_version = desired, self.version
        self.effects.append(desired)

    def _as_in_mirror(self, status: ProcessStatus) -> None:
        """The mirror shows `status`, which the workflow did not write (the last Success write
        completed the process, or it was paused or ended through the mirror): the process takes
        it; requests not yet written are answered with it."""
        for ticket in self.tickets.values():
            if not ticket.settled:
                ticket.answer, ticket.settled = (None if _shows(ticket.request, status) else Refused(status)), True
        if status.is_terminal:
            self.cancel_requested = self.cancel_requested and status is S.CANCELLED
            self.swap_id = None
            self.retrying = self.failing = None
        self.status = self.written = status
        self.version += 1
        self.written_version = self.version
        if status is not S.PAUSED:
            self.paused_from = None

    def _settle(self) -> None:
        """Answer the requests the mirror now shows."""
        for ticket in self.tickets.values():
            if ticket.settled or ticket.version > self.written_version:
                continue
            if ticket.request is Request.CANCEL:
                if self.written is S.CANCELLED and self.phase is not Phase.ENDED:
                    continue  # a cancel is answered once the process has stopped: no attempt in flight
                if self.written is not S.CANCELLED:
                    ticket.answer = Refused(self.written)
            ticket.settled = True

    # Lookups

    def _attempt_ended(self) -> RunAttempt:
        assert self.phase is Phase.ATTEMPT and self.attempt is not None
        attempt, self.attempt = self.attempt, None
        self.phase = Phase.IDLE
        self.cancel_sent = False
        return attempt

    def _transition(self, transition_id: int) -> TransitionStep:
        return next(t for t in self.plan.transitions if t.id == transition_id)

    def _activity(self, activity_id: int) -> ActivityStep:
        return next(a for a in self.plan.activities if a.id == activity_id)

