"""The walk: where a process is in its workflow's graph, and which step comes next there.

The machine (machine.py) controls the run: its status, requests, locks, timers and writes. At
each boundary it asks the walk for the next step (`next_step`) and tells it how each step ended.
The walk holds what the graph decides with: the position, the tokens (input, outputs and the
fields of events delivered), the step to try again or that failed for good, the transition a
check chose, and whether the transitions must be checked before the process may wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .messages import ActivityOutput, ActivityStep, Cause, Delivery, ProcessPlan, TransitionStep

#: The workflow drives retries (so that no attempt starts while paused); backoff doubles up to this.
MAX_BACKOFF = timedelta(minutes=10)


def to_check(outgoing: list[TransitionStep]) -> list[TransitionStep]:
    """The transitions to check, in order: up to the first that always passes (no condition, no deadline)."""
    checked: list[TransitionStep] = []
    for transition in outgoing:
        checked.append(transition)
        if transition.always:
            break
    return checked


# The next step at a boundary


@dataclass(frozen=True)
class Fail:
    """The step failed for good (`take_failure` says why): the process is Failed."""


@dataclass(frozen=True)
class Run:
    """Run this attempt of this activity: a retry, or the first of the step a transition chose."""

    activity: ActivityStep
    attempt: int


@dataclass(frozen=True)
class Complete:
    """No transition leaves the position: the process is Completed."""


@dataclass(frozen=True)
class Check:
    """Check these transitions (conditions and deadlines, in order)."""

    transitions: tuple[TransitionStep, ...]


@dataclass(frozen=True)
class Wait:
    """Checked, and no transition passed: wait for the next check."""


Step = Fail | Run | Complete | Check | Wait


@dataclass
class Walk:
    plan: ProcessPlan
    position: int | None = None  #: the last activity that succeeded (None: before the first)
    tokens: dict[str, str] = field(default_factory=dict)
    steps_taken: int = 0
    deliveries: int = 0  #: events delivered whose fields `tokens` holds
    arrived_at: datetime | None = None  #: when the process reached its position (deadlines count from then)
    wait_until: datetime | None = None  #: the last activity asked not to check before then
    check_due: bool = True  #: the transitions must be checked before the process may wait
    check_cause: str = Cause.BEGAN  #: why (a `Cause`)
    chosen: TransitionStep | None = None  #: a transition passed; its activity runs next
    #: conditions the last attempt checked as it succeeded, for its position: (chosen id or None)
    prechecked: tuple[int | None] | None = None
    retrying: tuple[ActivityStep, int] | None = None  #: a step to try again: (its activity, next attempt)
    failing: str | None = None  #: the step failed for good; Failed once the process may go on
    #: an event was delivered while an attempt or a check was in flight: its outcome is stale
    delivered_meanwhile: bool = False

    def next_step(self) -> Step:
        """What the process does next, if it may go on. A transition that always passes, or the
        check the last attempt made as it succeeded, is taken here without a check."""
        if self.failing is not None:
            return Fail()
        if self.retrying is not None:
            return Run(*self.retrying)
        if self.chosen is None:
            outgoing = self.outgoing()
            if not outgoing:
                return Complete()
            checked = to_check(outgoing)
            if checked[0].always:
                self.chosen = checked[0]
            elif self.prechecked is not None:
                (chosen_id,), self.prechecked = self.prechecked, None
                self.check_due = False
                self.chosen = None if chosen_id is None else self.transition(chosen_id)
            elif self.check_due:
                return Check(tuple(checked))
        if self.chosen is not None:
            return Run(self.activity(self.chosen.to_activity_id), 1)
        return Wait()

    def take_failure(self) -> str:
        failing, self.failing = self.failing, None
        assert failing is not None
        return failing

    def stop(self) -> None:
        """The process ended through the mirror: nothing is tried again or failed."""
        self.retrying = self.failing = None

    # Steps and their outcomes

    def attempt(self, activity: ActivityStep, attempt: int) -> tuple[int, tuple[TransitionStep, ...], bool]:
        """An attempt begins: (the step's number, the conditions it checks as it succeeds, whether
        no transition leaves the activity, so that its Success write completes the process)."""
        if attempt == 1:
            self.steps_taken += 1
        leaving = [t for t in self.plan.transitions if t.from_activity_id == activity.id]
        then_check = tuple(to_check(leaving)) if leaving and not leaving[0].always else ()
        self.chosen = None
        self.prechecked = None
        return self.steps_taken, then_check, not leaving

    def succeeded(self, activity: ActivityStep, output: ActivityOutput, now: datetime) -> None:
        self.retrying = None
        self.tokens.update(output.outputs)
        self.position = activity.id
        self.arrived_at = now
        self.wait_until = output.wait_until
        # Checked as it succeeded, unless an event came meanwhile (checked without its fields).
        checked, self.delivered_meanwhile = output.checked and not self.delivered_meanwhile, False
        self.prechecked = (output.chosen,) if checked else None
        self.check_due = not checked
        self.check_cause = Cause.DELIVERED if output.checked and not checked else Cause.SUCCEEDED

    def failed(self, activity: ActivityStep, attempt: int, error: str, *, retryable: bool) -> timedelta | None:
        """The pause before the step's next attempt; None: it failed for good."""
        if retryable and attempt < activity.max_attempts:
            self.retrying = (activity, attempt + 1)
            return min(timedelta(seconds=self.plan.retry_backoff_seconds) * 2 ** (attempt - 1), MAX_BACKOFF)
        self.retrying = None
        self.failing = error
        return None

    def not_begun(self, activity: ActivityStep, attempt: int) -> None:
        """The attempt did not run (the process was paused or ended through the mirror first): it runs when the process goes on."""
        self.steps_taken -= 1
        self.retrying = (activity, attempt)

    def chosen_is(self, transition_id: int | None, caught_up: tuple[Delivery, ...], *, may_go_on: bool) -> None:
        """A check's outcome; `caught_up`: deliveries it read from the mirror, checked with."""
        self.check_due = False
        for delivery in caught_up:
            self._take(delivery)
        stale, self.delivered_meanwhile = self.delivered_meanwhile, False
        if transition_id is not None and may_go_on:
            self.chosen = self.transition(transition_id)
        elif transition_id is None:
            self.chosen = None
            if stale:  # an event came meanwhile: check again with it
                self.check_now(Cause.DELIVERED)
        else:  # paused, cancelled or moving meanwhile: it checks again when it goes on
            self.check_due = True

    def delivered(self, delivery: Delivery) -> bool:
        """An event was delivered (the process's `seq`th): its fields are tokens now, and the
        transitions are checked at the next boundary. False if heard of already (a signal sent
        again, or read by a check). One that skips a delivery the workflow has not heard of is
        read, with that one, from the mirror by the check."""
        if delivery.seq <= self.deliveries:
            return False
        self._take(delivery)
        self.check_now(Cause.DELIVERED)
        self.prechecked = None  # the last attempt's check, made without the event's fields
        return True

    def _take(self, delivery: Delivery) -> None:
        if delivery.seq == self.deliveries + 1:
            self.tokens.update(delivery.tokens)
            self.deliveries = delivery.seq

    def check_now(self, cause: str) -> None:
        self.check_due, self.check_cause = True, cause

    def next_check_at(self, now: datetime) -> datetime:
        """When a process that waits checks again: at the end of the retry interval (or of the
        activity's wait_until), or at the earliest deadline still ahead, whichever is first."""
        at = max(now + timedelta(seconds=self.plan.retry_interval_seconds), self.wait_until or now)
        ahead = [deadline for deadline in self.deadlines(now) if deadline > now]
        if ahead:
            at = min(at, min(ahead))
        self.wait_until = None
        return at

    # Lookups

    def outgoing(self) -> list[TransitionStep]:
        return [t for t in self.plan.transitions if t.from_activity_id == self.position]

    def deadlines(self, now: datetime) -> list[datetime]:
        """When the deadlines of the transitions leaving the position come."""
        arrived = self.arrived_at or now
        return [arrived + timedelta(seconds=t.after_seconds) for t in self.outgoing() if t.after_seconds is not None]

    def waited(self, now: datetime) -> timedelta:
        return now - (self.arrived_at or now)

    def transition(self, transition_id: int) -> TransitionStep:
        return next(t for t in self.plan.transitions if t.id == transition_id)

    def activity(self, activity_id: int) -> ActivityStep:
        return next(a for a in self.plan.activities if a.id == activity_id)
