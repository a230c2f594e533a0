"""Lock keys: processes that share one never run activities at the same time.

Each key has a lock workflow, `workflowable-lock-<key>`, that grants the key to one process
workflow at a time, first come first served. A process asks with `acquire` (signal-with-start,
from a local activity, since a workflow cannot start another), is told `granted`, renews its
lease while it holds the key, and sends `release` when it waits, pauses or ends; a process that
stops waiting sends `withdraw`. A holder that stops renewing (terminated, or no worker runs it)
loses the key when its lease runs out, and is told `lost`. Sandbox-safe: workflow code only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError

from .messages import DEFAULT_LOCK_LEASE_SECONDS, Signals

LOCK_WORKFLOW = "WorkflowableLock"
#: The lock workflow's query of who holds the key and who waits (`LockState`).
CURRENT_QUERY = "current"
LOCK_ID_PREFIX = "workflowable-lock-"
#: A lock workflow with no holder and nobody waiting ends after this long.
IDLE = timedelta(minutes=1)


def lock_workflow_id(key: str) -> str:
    """`workflowable-lock-<key>`, or a digest of the key when it is too long for a workflow id."""
    if len(key) <= 200:
        return LOCK_ID_PREFIX + key
    return LOCK_ID_PREFIX + "sha256-" + hashlib.sha256(key.encode()).hexdigest()


@dataclass
class LockInput:
    key: str
    lease_seconds: float
    # Carried over by continue-as-new:
    holder: str | None = None
    generation: int = 0
    expires_at: datetime | None = None
    queue: list[str] = field(default_factory=list)


@dataclass
class LockRequest:
    """What a process's local activity needs to ask for a key."""

    key: str
    requester: str  #: the process's workflow id
    task_queue: str
    lease_seconds: float


@dataclass
class LockGrant:
    key: str
    generation: int


@dataclass
class LockState:
    """The `current` query: who holds the key, until when, and who waits, in order."""

    key: str
    holder: str | None
    generation: int
    expires_at: datetime | None
    waiting: list[str]


@workflow.defn(name=LOCK_WORKFLOW)
class LockWorkflow:
    def __init__(self) -> None:
        self.state = LockInput(key="", lease_seconds=DEFAULT_LOCK_LEASE_SECONDS)
        self.changed = False

    @workflow.run
    async def run(self, input: LockInput) -> None:
        # The acquire that came with the start (signal-with-start) was handled before run.
        early = [r for r in self.state.queue if r not in input.queue and r != input.holder]
        self.state = state = input
        state.queue.extend(early)
        while True:
            now = workflow.now()
            if state.holder and state.expires_at and now >= state.expires_at:
                workflow.logger.warning("lock %s: lease of %s ran out", state.key, state.holder)
                await self._tell(state.holder, Signals.LOST, LockGrant(state.key, state.generation))
                state.holder = None
            if state.holder is None and state.queue:
                await self._grant(state.queue.pop(0))
                continue
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(state)
            self.changed = False
            timeout = (state.expires_at - now) if state.holder and state.expires_at else IDLE
            try:
                await workflow.wait_condition(lambda: self.changed, timeout=timeout)
            except TimeoutError:
                if state.holder is None and not state.queue:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if state.holder is None and not state.queue:
                        return  # idle: the next acquire starts a new run

    async def _grant(self, requester: str) -> None:
        state = self.state
        state.generation += 1
        state.holder = requester
        state.expires_at = workflow.now() + timedelta(seconds=state.lease_seconds)
        if not await self._tell(requester, Signals.GRANTED, LockGrant(state.key, state.generation)):
            state.holder = None  # it ended while waiting: the next one gets the key

    async def _tell(self, workflow_id: str, signal: str, grant: LockGrant) -> bool:
        try:
            await workflow.get_external_workflow_handle(workflow_id).signal(signal, grant)
        except FailureError:  # the process's workflow has ended
            return False
        return True

    @workflow.signal(name=Signals.ACQUIRE)
    def acquire(self, requester: str) -> None:
        if requester != self.state.holder and requester not in self.state.queue:
            self.state.queue.append(requester)
        self.changed = True

    @workflow.signal(name=Signals.RENEW)
    def renew(self, grant: LockGrant) -> None:
        if self.state.holder and grant.generation == self.state.generation:
            self.state.expires_at = workflow.now() + timedelta(seconds=self.state.lease_seconds)

    @workflow.signal(name=Signals.RELEASE)
    def release(self, grant: LockGrant) -> None:
        if grant.generation == self.state.generation:
            self.state.holder = None
            self.changed = True

    @workflow.signal(name=Signals.WITHDRAW)
    def withdraw(self, requester: str) -> None:
        if requester in self.state.queue:
            self.state.queue.remove(requester)
            self.changed = True

    @workflow.query(name=CURRENT_QUERY)
    def current(self) -> LockState:
        state = self.state
        return LockState(state.key, state.holder, state.generation, state.expires_at, list(state.queue))
