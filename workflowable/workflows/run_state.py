"""What a process's run keeps between two events, and what it does at the end of each: start
the next step if it is at a boundary, write the status it wants, end.

`Machine` (machine.py) takes the events; this is its state and its rules for going on, kept apart
so each reads on its own. Like the machine, it does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..states import ProcessStatus
from .effects import (
    AskLock,
    Begin,
    CancelAttempt,
    CancelTimer,
    Choose,
    ContinueAsNew,
    Effect,
    Finish,
    Move,
    Phase,
    ReleaseLock,
    RunAttempt,
    StartTimer,
    WithdrawLock,
)
from .messages import ActivityStep, Carried, ProcessPlan
from .status_track import StatusTrack, Write
from .walk import Check, Complete, Fail, Run, Wait, Walk

S = ProcessStatus


@dataclass
class RunState:
    """A process's run between events. Where the process is in its graph, and which step comes
    next there, is its `walk`'s; its status, the mirror's and the requests waiting are its `track`'s."""

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

