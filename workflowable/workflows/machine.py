"""The process state machine: every status move of a running process is decided here and in its
`RunState` (run_state.py), and nowhere else.

`Machine` holds where a process stands and takes one event at a time (a request, an attempt's
end, a mirror write's answer, a timer, a lock grant, ...); each event may change its state and
queue *effects* for the workflow to carry out (write a status, run an attempt, start a timer,
ask for the lock key, continue as new, finish). It does no I/O and knows nothing of Temporal:
the workflow (process.py) turns handlers and Temporal outcomes into events and effects into
activities, timers and signals. Its tests run every state against every event without a server.

Two parts keep their own books: the walk (walk.py), where the process is in its graph and which
step comes next there, and the status track (status_track.py), the status wanted, the one the
mirror shows, the write between them and the requests waiting for it. The machine decides with
both: requests, the run's phase, the lock key, timers and when each step may start. The effects
are declared in effects.py; what a run keeps between events, and how it goes on at the end of
each (`_advance`), is `RunState` in run_state.py.

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

from datetime import datetime

from ..states import ProcessStatus, Request
from .effects import CancelAttempt, CancelTimer, CloseAttempt, Finish, Phase, ReleaseLock, RunAttempt
from .messages import ActivityOutput, Carried, Cause, Delivery, ProcessPlan
from .run_state import RunState
from .status_track import Refused, StatusTrack
from .walk import Walk

S = ProcessStatus


class Machine(RunState):
    """A process's run; every method named after an event takes that event. What the run keeps
    between events, and how it goes on after each, is `RunState`'s (run_state.py)."""

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

    def _attempt_ended(self) -> RunAttempt:
        assert self.phase is Phase.ATTEMPT and self.attempt is not None
        attempt, self.attempt = self.attempt, None
        self.phase = Phase.IDLE
        self.cancel_sent = False
        return attempt

