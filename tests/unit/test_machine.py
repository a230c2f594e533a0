"""The process state machine on its own: every state it can be in against every event, and
thousands of random interleavings of requests and outcomes checked against its invariants.

`World` plays everything around the machine the way the workflow and the mirror do: it answers
each effect (a write, a condition check, an attempt, a timer, the lock key, a swap's move) when
the test says so, and keeps a mirror that applies a write only along the transition table and
whose last Success write completes a Running process, as Postgres does.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from workflowable.states import TRANSITIONS, ProcessStatus, Request
from workflowable.workflows import effects as fx
from workflowable.workflows.effects import Phase
from workflowable.workflows.machine import Machine
from workflowable.workflows.messages import (
    ActivityOutput,
    ActivityStep,
    Carried,
    ConditionStep,
    Delivery,
    ProcessPlan,
    TransitionStep,
)
from workflowable.workflows.status_track import Refused

S = ProcessStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)
GATE = [ConditionStep("Gate", {})]


def plan(
    *, lock_key: str | None = None, max_attempts: int = 3, checks_per_run: int = 5, deadline: float | None = None
) -> ProcessPlan:
    """start -> a -> (when the gate is open) b -> end; with `deadline`, also a -> b once the
    process has waited that many seconds at a."""
    a = ActivityStep(1, "a", "A", {}, max_attempts, 10)
    b = ActivityStep(2, "b", "B", {}, max_attempts, 10)
    late = [TransitionStep(12, 1, 2, 2, after_seconds=deadline)] if deadline is not None else []
    return ProcessPlan(
        process_id=1,
        workflow_name="flow",
        event_name="Event",
        status=int(S.RUNNING),
        retry_interval_seconds=60,
        retry_backoff_seconds=1,
        activities=[a, b],
        transitions=[TransitionStep(10, None, 1, 1), TransitionStep(11, 1, 2, 1, GATE), *late],
        position=None,
        tokens={"k": "v"},
        steps_taken=0,
        lock_key=lock_key,
        checks_per_run=checks_per_run,
    )


@dataclass
class World:
    """The machine's surroundings, answering its effects when told to."""

    machine: Machine
    mirror: ProcessStatus
    now: datetime = T0
    writes: list[fx.Write] = field(default_factory=list)  #: in flight (at most one)
    choose: fx.Choose | None = None
    attempt: fx.RunAttempt | None = None
    cancel_asked: bool = False
    timers: dict[int, datetime] = field(default_factory=dict)
    lock_asked: bool = False
    lock_held: int | None = None
    generation: int = 0
    move: fx.Move | None = None
    finished: fx.Finish | None = None
    continued: bool = False
    begin: bool = False
    history: list[str] = field(default_factory=list)
    tickets: dict[int, Request] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)  #: in the mirror, in order

    @classmethod
    def of(cls, machine: Machine, mirror: ProcessStatus | None = None) -> World:
        world = cls(machine, mirror or machine.written)
        world.collect()
        return world

    # The machine's effects, as the workflow carries them out

    def collect(self) -> None:
        for effect in self.machine.take_effects():
            self.history.append(type(effect).__name__)
            assert self.finished is None or isinstance(effect, fx.ReleaseLock | fx.CancelTimer), f"{effect} after {self.finished}"
            if isinstance(effect, fx.Write):
                assert not self.writes, "two writes in flight"
                assert not self.machine.written.is_terminal, f"a write after the mirror showed an end: {self.history[-12:]} {effect} {self.machine.status} {self.mirror}"
                self.writes.append(effect)
            elif isinstance(effect, fx.Begin):
                assert self.attempt is None
                self.begin = True
            elif isinstance(effect, fx.Choose):
                assert self.choose is None and self.attempt is None
                self.choose = effect
            elif isinstance(effect, fx.RunAttempt):
                assert self.attempt is None and self.choose is None, "two things in flight"
                assert (self.machine.status is S.RUNNING and self.mirror is S.RUNNING) or effect.begins_run, "an attempt outside Running"
                assert not self.machine.cancel_requested, "an attempt after a cancel"
                if self.machine.plan.lock_key:
                    assert self.lock_held is not None, "an attempt without the lock key"
                self.attempt = effect
            elif isinstance(effect, fx.CancelAttempt):
                assert self.attempt is not None
                self.cancel_asked = True
            elif isinstance(effect, fx.StartTimer):
                self.timers[effect.timer] = effect.at
            elif isinstance(effect, fx.CancelTimer):
                self.timers.pop(effect.timer, None)
            elif isinstance(effect, fx.AskLock):
                assert not self.lock_asked and self.lock_held is None
                self.lock_asked = True
            elif isinstance(effect, fx.ReleaseLock):
                if self.lock_held == effect.generation:
                    self.lock_held = None
            elif isinstance(effect, fx.WithdrawLock):
                self.lock_asked = False
            elif isinstance(effect, fx.Move):
                self.move = effect
            elif isinstance(effect, fx.ContinueAsNew):
                self.continued = True
            elif isinstance(effect, fx.Finish):
                self.finished = effect

    def step(self, event, *args, **kwargs) -> None:
        self.machine.now = self.now
        event(self.machine, *args, **kwargs)
        self.collect()
        self.check()

    # Answers

    def answer_write(self) -> None:
        write = self.writes.pop()
        status = write.status
        if status in TRANSITIONS[self.mirror] or (status is S.PENDING and self.mirror is S.PENDING):
            self.mirror = status
        else:
            # The mirror refuses a move only once it has moved on by itself: the last Success
            # write completed the process, or it was moved or ended outside the workflow.
            assert self.mirror.is_terminal or self.mirror is status, f"refused {self.mirror.label} -> {status.label}"
        self.step(Machine.written_as, self.mirror)

    def answer_begin(self) -> None:
        self.begin = False
        if self.mirror in (S.CREATED, S.DISPATCHED):
            self.mirror = S.RUNNING
        self.step(Machine.begun, self.mirror)

    def answer_choose(self, passes: bool) -> None:
        """The check, with the deliveries the mirror has that the machine had not heard of."""
        choose, self.choose = self.choose, None
        assert choose is not None
        missed = tuple(self.deliveries[choose.deliveries :])
        self.step(Machine.chosen_is, choose.transitions[-1].id if passes else None, missed)

    def deliver(self, *, signalled: bool = True) -> None:
        """An event delivered in the mirror and, unless the signal is lost, to the machine."""
        delivery = Delivery("Decided", {"decision": f"d{len(self.deliveries) + 1}"}, len(self.deliveries) + 1)
        self.deliveries.append(delivery)
        if signalled:
            self.step(Machine.delivered, delivery)

    def succeed(self, *, gate_open: bool = False) -> None:
        attempt, self.attempt = self.attempt, None
        assert attempt is not None
        self.cancel_asked = False
        if attempt.begins_run and self.mirror is not S.RUNNING:
            if self.mirror is S.DISPATCHED:
                self.mirror = S.RUNNING
            else:
                self.step(Machine.not_begun, self.mirror)
                return
        completed = attempt.completes and self.mirror is S.RUNNING
        if completed:
            self.mirror = S.COMPLETED
        checked = bool(attempt.then_check)
        chosen = attempt.then_check[-1].id if checked and gate_open else None
        self.step(Machine.attempt_succeeded, ActivityOutput({"out": str(attempt.step)}, checked=checked, chosen=chosen, completed=completed))

    def fail(self, *, retryable: bool = True, timed_out: bool = False) -> None:
        attempt, self.attempt = self.attempt, None
        assert attempt is not None
        if attempt.begins_run and self.mirror is S.DISPATCHED and not timed_out:  # a worker that died wrote nothing
            self.mirror = S.RUNNING
        self.cancel_asked = False
        self.step(Machine.attempt_failed, "boom", retryable=retryable, timed_out=timed_out)

    def cancelled(self) -> None:
        attempt, self.attempt = self.attempt, None
        assert attempt is not None and self.cancel_asked
        self.cancel_asked = False
        self.step(Machine.attempt_cancelled, "cancelled")

    def fire(self) -> None:
        timer = min(self.timers)
        self.now = max(self.now, self.timers.pop(timer))
        self.step(Machine.timer_fired, timer)

    def grant(self) -> None:
        self.lock_asked = False
        self.generation += 1
        self.lock_held = self.generation
        self.step(Machine.granted, self.generation)

    def lose(self) -> None:
        """The lease ran out: the lock workflow took the key back."""
        generation, self.lock_held = self.lock_held, None
        self.step(Machine.lost, generation)

    def answer_move(self, moved: bool) -> None:
        self.move = None
        if moved:
            self.mirror = S.CANCELLED
        self.step(Machine.moved, 99 if moved else None)

    def request(self, request: Request) -> int:
        self.machine.now = self.now
        ticket = self.machine.request(request)
        self.tickets[ticket] = request
        self.collect()
        self.check()
        return ticket

    # Invariants, after every event

    def check(self) -> None:
        machine = self.machine
        if machine.status is S.PAUSED and not machine.ended:
            assert machine.refusal(Request.RESUME) is None and machine.refusal(Request.CANCEL) is None, "a Paused process must resume and cancel"
        if self.finished is not None:
            assert machine.ended
            assert self.finished.status is self.mirror, f"ended {self.finished.status.label}, mirror {self.mirror.label}"
            assert self.attempt is None and self.choose is None, "ended with work in flight"
            assert self.lock_held is None and not self.lock_asked, "ended holding or waiting for the key"
        if machine.written is not self.mirror and not self.writes:
            # With no write in flight, the machine knows what the mirror shows, except a Success
            # write's completion it has not heard of yet, or a begin it has not made.
            # (or a begin its first attempt has not written yet: the next attempt writes it).
            unbegun = machine.begins_run and self.mirror is S.DISPATCHED
            assert self.attempt is not None or self.mirror is S.COMPLETED or unbegun, f"{machine.written.label} vs {self.mirror.label}"
        for ticket, request in self.tickets.items():
            settled, refused = machine.answer(ticket)
            if settled and refused is None and request is Request.CANCEL:
                assert self.mirror is S.CANCELLED, "a cancel answered before the mirror shows it"
        assert machine.walk.deliveries <= len(self.deliveries), "heard of a delivery the mirror does not have"
        if machine.walk.deliveries:
            assert machine.walk.tokens["decision"] == f"d{machine.walk.deliveries}", "the last delivery heard of is not in the tokens"

    # Driving

    def options(self) -> list[str]:
        found = []
        if self.writes:
            found.append("write")
        if self.begin:
            found.append("begin")
        if self.choose is not None:
            found += ["pass", "none"]
        if self.attempt is not None:
            found += ["succeed", "succeed-open", "fail", "fail-final", "time-out"] + (["cancelled"] if self.cancel_asked else [])
        if self.timers:
            found.append("fire")
        if self.lock_asked:
            found.append("grant")
        if self.lock_held is not None:
            found.append("lose")
        if self.move is not None:
            found += ["moved", "not-moved"]
        return found

    def act(self, action: str) -> None:
        {
            "write": self.answer_write,
            "begin": self.answer_begin,
            "pass": lambda: self.answer_choose(True),
            "none": lambda: self.answer_choose(False),
            "succeed": self.succeed,
            "succeed-open": lambda: self.succeed(gate_open=True),
            "fail": self.fail,
            "fail-final": lambda: self.fail(retryable=False),
            "time-out": lambda: self.fail(timed_out=True),
            "cancelled": self.cancelled,
            "fire": self.fire,
            "grant": self.grant,
            "lose": self.lose,
            "moved": lambda: self.answer_move(True),
            "not-moved": lambda: self.answer_move(False),
        }[action]()

    def settle(self, rng: random.Random, *, bound: int = 400) -> None:
        """No more requests: resume if paused, answer everything (conditions pass, attempts
        succeed in the end) until the run ends or continues as new."""
        for _ in range(bound):
            if self.finished is not None or self.continued:
                return
            if self.machine.status is S.PAUSED and self.machine.refusal(Request.RESUME) is None:
                self.request(Request.RESUME)
                continue
            options = self.options()
            assert options, f"stuck: {self.machine.phase} {self.machine.status.label}, mirror {self.mirror.label}, {self.history[-8:]}"
            kind = rng.choice(options)
            favourable = {"none": "pass", "fail": "succeed", "fail-final": "succeed-open", "time-out": "succeed"}
            self.act(favourable.get(kind, kind) if rng.random() < 0.7 else kind)
        raise AssertionError(f"did not end in {bound} steps: {self.history[-12:]}")


def started(*, lock_key: str | None = None, begins_run: bool = False, status: ProcessStatus = S.RUNNING, **options) -> World:
    machine = Machine.begin(plan(lock_key=lock_key, **options), status, now=T0, begins_run=begins_run)
    return World.of(machine, S.DISPATCHED if begins_run else status)


# Paths through the machine


def test_a_process_that_never_waits_writes_nothing_itself():
    world = started(begins_run=True)
    assert world.attempt is not None and world.attempt.begins_run
    world.succeed(gate_open=True)
    assert world.attempt is not None and world.attempt.completes
    world.succeed()
    assert world.finished == fx.Finish(S.COMPLETED)
    assert "Write" not in world.history and "Choose" not in world.history


def test_no_passing_transition_waits_with_one_write_a_check():
    world = started()
    world.succeed()  # the gate is closed: Pending
    assert world.writes == [fx.Write(S.PENDING, next_run_at=T0 + timedelta(seconds=60))]
    world.answer_write()
    for check in range(1, 4):
        world.fire()
        assert world.choose is not None and not world.writes, "a re-check writes nothing before it knows"
        world.answer_choose(False)
        assert len(world.writes) == 1 and world.writes[0].status is S.PENDING
        world.answer_write()
        assert world.machine.checks == check + 1
    world.fire()
    world.answer_choose(True)
    world.answer_write()  # Running
    world.succeed()
    assert world.finished == fx.Finish(S.COMPLETED)


def test_a_waiting_process_continues_as_new_after_its_checks_and_carries_its_state():
    world = started(checks_per_run=2)
    world.succeed()
    for _ in range(2):
        world.answer_write()
        world.fire()
        if world.continued:
            break
        world.answer_choose(False)
    assert world.continued and world.machine.phase is Phase.CONTINUING
    carried = world.machine.carried()
    assert carried == Carried(int(S.PENDING), 1, {"k": "v", "out": "1"}, 1, None, deliveries=0, arrived_at=T0)
    following = World.of(Machine.resume_carried(world.machine.plan, carried, now=T0), S.PENDING)
    assert following.choose is not None, "the next run checks at once"
    following.answer_choose(True)
    following.answer_write()
    assert following.attempt is not None and following.attempt.step == 2
    following.succeed()
    assert following.finished == fx.Finish(S.COMPLETED)


def test_a_request_while_about_to_continue_keeps_the_run():
    world = started(checks_per_run=1)
    world.succeed()
    world.answer_write()
    world.fire()
    assert world.continued
    world.continued = False
    world.request(Request.PAUSE)
    assert world.machine.phase is Phase.IDLE and world.writes[0].status is S.PAUSED


def test_cancel_during_an_attempt_keeps_its_success_and_starts_nothing_after():
    world = started()
    ticket = world.request(Request.CANCEL)
    assert world.cancel_asked and world.writes == [fx.Write(S.CANCELLED)]
    world.answer_write()
    assert world.machine.answer(ticket) == (False, None), "answered once the attempt has stopped"
    world.succeed(gate_open=True)  # it finished before the cancel reached it
    assert world.machine.walk.tokens["out"] == "1" and world.machine.walk.position == 1
    assert world.finished == fx.Finish(S.CANCELLED)
    assert world.machine.answer(ticket) == (True, None)
    assert world.history.count("RunAttempt") == 1


def test_cancel_racing_the_last_success_write_is_too_late():
    world = started()
    world.succeed(gate_open=True)
    assert world.attempt is not None and world.attempt.completes
    ticket = world.request(Request.CANCEL)
    # The last attempt's Success write completed the process before the cancel's write landed.
    world.attempt = None
    world.mirror = S.COMPLETED
    world.answer_write()
    assert world.machine.answer(ticket) == (True, Refused(S.COMPLETED))
    world.step(Machine.attempt_succeeded, ActivityOutput({}, completed=True))
    assert world.finished == fx.Finish(S.COMPLETED)


def test_pause_then_cancel_during_an_attempt_ends_cancelled():
    world = started()
    world.request(Request.PAUSE)
    world.request(Request.CANCEL)
    world.answer_write()
    if world.writes:
        world.answer_write()
    assert world.mirror is S.CANCELLED
    world.cancelled()
    assert world.finished == fx.Finish(S.CANCELLED)


def test_pause_during_an_attempt_takes_effect_when_it_ends_and_resume_goes_on():
    world = started()
    world.request(Request.PAUSE)
    world.answer_write()
    world.succeed(gate_open=True)
    assert world.attempt is None and world.machine.phase is Phase.IDLE, "no step starts while paused"
    world.request(Request.RESUME)
    world.answer_write()
    assert world.attempt is not None and world.attempt.activity.id == 2
    world.succeed()
    assert world.finished == fx.Finish(S.COMPLETED)


def test_a_paused_last_step_completes_on_resume():
    world = started()
    world.succeed(gate_open=True)
    world.request(Request.PAUSE)
    world.answer_write()
    world.succeed()  # the mirror is Paused: the Success write does not complete it
    assert world.mirror is S.PAUSED and world.finished is None
    world.request(Request.RESUME)
    world.answer_write()
    assert world.writes == [fx.Write(S.COMPLETED)]
    world.answer_write()
    assert world.finished == fx.Finish(S.COMPLETED)


def test_pause_and_resume_while_a_write_is_in_flight_coalesce():
    world = started()
    world.succeed()
    first = world.request(Request.PAUSE)  # the Pending write is in flight
    second = world.request(Request.RESUME)
    world.answer_write()
    assert not world.writes, "paused and resumed before the mirror heard: nothing to write"
    assert world.machine.answer(first) == (True, None) and world.machine.answer(second) == (True, None)


def test_resume_of_a_waiting_process_checks_at_once():
    world = started()
    world.succeed()
    world.answer_write()
    world.request(Request.PAUSE)
    assert not world.timers, "the timer is dropped while paused"
    world.answer_write()
    world.request(Request.RESUME)
    world.answer_write()
    assert world.choose is not None


def test_a_lock_key_is_taken_only_to_run_and_never_to_check():
    world = started(lock_key="k", status=S.DISPATCHED)
    assert world.lock_asked
    world.grant()
    world.answer_write()  # Running with the key
    world.succeed()  # gate closed: Pending, the key given back
    assert world.lock_held is None
    world.answer_write()
    world.fire()
    assert world.choose is not None and not world.lock_asked, "conditions are checked without the key"
    world.answer_choose(False)
    world.answer_write()
    world.fire()
    world.answer_choose(True)
    assert world.writes == [fx.Write(S.DISPATCHED)], "it waits for its key Dispatched"
    world.answer_write()
    assert world.lock_asked
    world.grant()
    world.answer_write()
    world.succeed()
    assert world.finished == fx.Finish(S.COMPLETED) and world.lock_held is None


def test_a_grant_after_the_process_stopped_waiting_is_handed_back():
    world = started(lock_key="k", status=S.DISPATCHED)
    world.request(Request.PAUSE)
    assert not world.lock_asked, "withdrawn from the queue"
    world.step(Machine.granted, 7)
    assert world.history[-1] == "ReleaseLock"


def test_a_failed_step_is_retried_after_a_backoff_and_fails_for_good_at_the_last_attempt():
    world = started(max_attempts=2)
    world.fail(timed_out=True)
    assert "CloseAttempt" in world.history and world.timers
    world.fire()
    assert world.attempt is not None and world.attempt.attempt == 2
    world.fail()
    assert world.writes[0].status is S.FAILED and world.writes[0].error == "boom"
    world.answer_write()
    assert world.finished == fx.Finish(S.FAILED, "boom")


def test_a_step_that_fails_while_paused_fails_on_resume():
    world = started(max_attempts=1)
    world.request(Request.PAUSE)
    world.answer_write()
    world.fail()
    assert world.finished is None and not world.writes
    world.request(Request.RESUME)
    world.answer_write()
    world.answer_write()
    assert world.finished == fx.Finish(S.FAILED, "boom")


def test_not_begun_takes_the_mirrors_status():
    world = started(begins_run=True)
    world.mirror = S.PAUSED  # paused through the mirror before the run began
    world.succeed()
    assert world.machine.status is S.PAUSED and world.machine.walk.steps_taken == 0
    world.request(Request.RESUME)
    world.answer_write()
    assert world.attempt is not None and world.attempt.step == 1 and not world.attempt.begins_run


def test_a_swap_moves_the_process_at_its_next_boundary():
    world = started()
    world.step(Machine.swap, 5)
    assert world.move is None, "not during an attempt"
    world.succeed()
    assert world.move == fx.Move(5)
    world.answer_move(True)
    assert world.finished == fx.Finish(S.CANCELLED, moved=True)


def test_a_cancelled_process_is_not_moved():
    world = started()
    world.request(Request.CANCEL)
    world.step(Machine.swap, 5)
    assert world.machine.swap_id is None


def test_wake_cuts_a_wait_short():
    world = started()
    world.succeed()
    world.answer_write()
    world.step(Machine.wake)
    assert world.choose is not None and not world.timers


def test_a_delivery_wakes_a_waiting_process_and_is_checked_with_its_tokens():
    world = started()
    world.succeed()  # the gate is closed: Pending
    world.answer_write()
    assert world.timers
    world.deliver()
    assert world.choose is not None and not world.timers, "checked at once, not at the end of the wait"
    assert world.choose.deliveries == 1 and world.machine.walk.tokens["decision"] == "d1"
    world.deliver()  # a second one while the first check is in flight
    world.answer_choose(False)
    assert world.choose is not None and world.choose.deliveries == 2, "checked again with the second"
    world.answer_choose(True)
    world.answer_write()  # Running
    world.succeed()
    assert world.finished == fx.Finish(S.COMPLETED)


def test_a_delivery_sent_again_changes_nothing():
    world = started()
    world.succeed()
    world.answer_write()
    world.deliver()
    world.answer_choose(False)  # Pending still, a new timer
    world.step(Machine.delivered, world.deliveries[0])
    assert world.choose is None and world.timers, "a repeated signal is not a new event"


def test_a_delivery_during_an_attempt_is_checked_after_it():
    world = started()
    world.deliver()  # while the first attempt runs
    world.succeed()  # it checked the gate without the event's fields: closed
    assert world.choose is not None and not world.writes, "checked again before it waits"
    world.answer_choose(True)
    assert world.attempt is not None and world.attempt.step == 2, "still Running: on to the next step"


def test_a_lost_signal_is_made_up_by_the_next_check():
    world = started()
    world.succeed()
    world.answer_write()
    world.deliver(signalled=False)  # the trigger's signal never arrived
    assert world.choose is None and world.machine.walk.deliveries == 0
    world.fire()  # the retry interval ends
    assert world.choose is not None and world.choose.deliveries == 0
    world.answer_choose(True)  # the check read the delivery from the mirror
    assert world.machine.walk.deliveries == 1 and world.machine.walk.tokens["decision"] == "d1"
    world.deliver()  # the next one, signalled, follows on
    assert world.machine.walk.deliveries == 2


def test_a_signal_after_a_lost_one_makes_the_process_check_and_read_both():
    world = started()
    world.succeed()
    world.answer_write()
    world.deliver(signalled=False)
    world.deliver()  # the second arrives; the first is missing
    assert world.machine.walk.deliveries == 0, "not merged out of order"
    assert world.choose is not None
    world.answer_choose(False)
    assert world.machine.walk.deliveries == 2 and world.machine.walk.tokens["decision"] == "d2"


def test_a_paused_process_keeps_a_delivery_for_its_resume():
    world = started()
    world.succeed()
    world.answer_write()
    world.request(Request.PAUSE)
    world.answer_write()
    world.deliver()
    assert world.choose is None and world.machine.walk.tokens["decision"] == "d1"
    world.request(Request.RESUME)
    world.answer_write()
    assert world.choose is not None and world.choose.deliveries == 1


def test_a_deadline_wakes_the_process_before_its_retry_interval():
    world = started(deadline=30)  # retry interval 60 s
    world.now = T0 + timedelta(seconds=5)
    world.succeed()  # neither the gate nor the deadline passes
    assert world.writes == [fx.Write(S.PENDING, next_run_at=T0 + timedelta(seconds=35))], "woken at its deadline"
    world.answer_write()
    world.fire()
    assert world.choose is not None and world.choose.waited == timedelta(seconds=30)
    assert [t.id for t in world.choose.transitions] == [11, 12]
    world.answer_choose(True)
    world.answer_write()
    world.succeed()
    assert world.finished == fx.Finish(S.COMPLETED)


def test_a_deadline_that_has_passed_leaves_the_retry_interval():
    world = started(deadline=30)
    world.succeed()
    world.answer_write()
    world.fire()  # at the deadline; the check says no (a condition beside it, say)
    world.answer_choose(False)
    assert world.writes == [fx.Write(S.PENDING, next_run_at=T0 + timedelta(seconds=90))], "the retry interval again"


def test_requests_are_refused_where_the_table_says():
    world = started()
    assert world.machine.refusal(Request.RESUME) == Refused(S.RUNNING)
    world.request(Request.CANCEL)
    for request in (Request.PAUSE, Request.RESUME, Request.CANCEL):
        ticket = world.request(request)
        assert world.machine.answer(ticket) == (True, Refused(S.CANCELLED))


# Every state against every event


def _key(world: World) -> tuple:
    machine = world.machine
    return (machine.phase, machine.status, machine.written, bool(world.writes), machine.cancel_requested, machine.plan.lock_key is not None)


def _reachable(seed: int) -> list[World]:
    """A world in each state the machine reaches (phase, status, what the mirror shows, a write
    in flight, a cancel accepted, a lock key), found by random walks."""
    found: dict[tuple, World] = {}

    def keep(world: World) -> None:
        key = _key(world)
        if key not in found:
            found[key] = copy.deepcopy(world)

    rng = random.Random(seed)
    for walk in range(300):
        _walk(rng, steps=rng.randrange(0, 30), lock=walk % 2 == 0, seen=keep)
    return list(found.values())


def _walk(rng: random.Random, *, steps: int, lock: bool, seen: Callable[[World], None] = lambda world: None) -> World:
    world = started(lock_key="k" if lock else None, status=S.DISPATCHED if lock else S.RUNNING, begins_run=not lock and rng.random() < 0.5)
    seen(world)
    for _ in range(steps):
        if world.finished is not None or world.continued:
            break
        options = [*world.options(), "pause", "resume", "cancel", "wake", "swap", "temporal-cancel", "deliver", "deliver-lost"]
        _do(world, rng.choice(options))
        seen(world)
    return world


def _do(world: World, action: str) -> None:
    if action in ("pause", "resume", "cancel"):
        world.request(Request(action))
    elif action == "wake":
        world.step(Machine.wake)
    elif action == "swap":
        world.step(Machine.swap, 5)
    elif action == "temporal-cancel":
        world.step(Machine.cancelled_by_temporal)
    elif action in ("deliver", "deliver-lost"):
        world.deliver(signalled=action == "deliver")
    else:
        world.act(action)


@pytest.mark.parametrize("seed", range(4))
def test_every_reachable_state_takes_every_event(seed):
    worlds = _reachable(seed)
    phases = {world.machine.phase for world in worlds}
    assert {Phase.IDLE, Phase.ATTEMPT, Phase.WAITING, Phase.CHOOSING, Phase.LOCKING, Phase.BACKOFF, Phase.ENDED} <= phases, phases
    assert len(worlds) > 60, len(worlds)
    statuses = {world.machine.status for world in worlds}
    assert {S.RUNNING, S.PENDING, S.DISPATCHED, S.PAUSED, S.CANCELLED, S.COMPLETED} <= statuses, statuses
    actions = ["pause", "resume", "cancel", "wake", "swap", "temporal-cancel", "deliver", "deliver-lost"]
    for world in worlds:
        for action in actions + world.options():
            probe = copy.deepcopy(world)
            _do(probe, action)
            if probe.finished is None and not probe.continued:
                probe.settle(random.Random(seed))


# Random interleavings


@pytest.mark.parametrize("seed", range(20))
def test_random_interleavings_keep_the_invariants(seed):
    """100 walks a seed: requests and outcomes in random order, then everything answered; every
    accepted request had its effect and every process ends (or continues as new)."""
    rng = random.Random(seed)
    for _ in range(100):
        world = _walk(rng, steps=rng.randrange(1, 60), lock=rng.random() < 0.4)
        world.settle(rng)
        machine = world.machine
        for ticket, request in world.tickets.items():
            settled, refused = machine.answer(ticket)
            assert settled or world.continued, f"{request.value} never answered: {world.history[-10:]}"
            if request is Request.CANCEL and settled and refused is None:
                assert world.finished is not None and world.finished.status is S.CANCELLED
        if world.finished is not None:
            assert world.finished.status.is_terminal
            assert world.finished.status is world.mirror


def test_a_delivery_after_a_check_made_while_paused_is_checked_on_resume():
    """The last attempt checked its transitions as it succeeded, while a pause was in flight; an
    event delivered before the resume makes that check out of date."""
    world = started()
    world.request(Request.PAUSE)
    world.answer_write()  # Paused
    world.succeed()  # checked as it succeeded (the gate closed), held by the pause
    world.deliver()
    world.request(Request.RESUME)
    world.answer_write()
    assert world.choose is not None and world.choose.deliveries == 1, "checked again with the event, not left for the retry interval"


def test_a_cancel_whose_write_outran_its_lost_workflow_task_is_done_when_delivered_again():
    """A request's status write is a local activity: it runs before the workflow task that took
    the request completes. When the server loses that task, the write stands in the mirror and
    the request is delivered again, while the workflow, rebuilt from its history, may take the
    status from the mirror first (here through the write of a later pause)."""
    world = started()  # an attempt in flight
    world.mirror = S.CANCELLED  # the lost task's cancel, written
    pause = world.request(Request.PAUSE)
    world.answer_write()
    assert world.machine.answer(pause) == (True, Refused(S.CANCELLED))
    cancel = world.request(Request.CANCEL)  # delivered again
    assert world.machine.answer(cancel) == (True, None), "done, not refused"
    assert world.cancel_asked, "the attempt in flight is asked to stop, as by a cancel request"
    world.cancelled()
    assert world.finished is not None and world.finished.status is S.CANCELLED
    world.step(Machine.cancelled_by_temporal)  # the run asks Temporal to show it Canceled
    assert world.machine.answer(world.request(Request.CANCEL)) == (True, None), "still done, not refused"


def test_a_pause_the_first_attempt_found_written_is_the_process_own():
    """The run's own Paused write reached the mirror before its first attempt began: the attempt
    does not begin, and a second pause is refused as after any pause of its own."""
    world = started(begins_run=True)
    world.request(Request.PAUSE)
    world.answer_write()
    world.succeed()  # not begun: the mirror shows Paused
    assert world.machine.status is S.PAUSED
    again = world.request(Request.PAUSE)
    assert world.machine.answer(again) == (True, Refused(S.PAUSED))


def test_a_request_the_process_already_shows_by_its_own_write_is_refused():
    world = started()
    world.request(Request.PAUSE)
    world.answer_write()
    again = world.request(Request.PAUSE)
    assert world.machine.answer(again) == (True, Refused(S.PAUSED))
    world.request(Request.CANCEL)
    world.answer_write()
    world.cancelled() if world.cancel_asked else world.succeed()
    assert world.finished is not None and world.finished.status is S.CANCELLED
    assert world.machine.answer(world.request(Request.CANCEL)) == (True, Refused(S.CANCELLED))
