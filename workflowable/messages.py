"""Serializable payloads between the client, the process workflow and its activities.

Imported by the Temporal workflow: no I/O, only dataclasses and Temporal's own types.

No `from __future__ import annotations` here: Temporal's converter reads a dataclass's type hints
each time it decodes one, and string annotations made that three times slower (every activity's
input and output is one of these).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey

#: The workflow type that interprets every workflow graph, and its ids.
PROCESS_WORKFLOW = "WorkflowProcess"
WORKFLOW_ID_PREFIX = "workflow-process-"
#: The sweep's workflow type, and the id of the Temporal Schedule that runs it.
PROCESS_RUNS_WORKFLOW = "WorkflowableProcessRuns"
PROCESS_RUNS_SCHEDULE = "workflowable-process-runs"

#: Search attributes kept current by the workflow so the Temporal UI can filter processes.
PROCESS_ID_ATTRIBUTE = SearchAttributeKey.for_int("WorkflowableProcessId")
STATUS_ATTRIBUTE = SearchAttributeKey.for_keyword("WorkflowableStatus")
WORKFLOW_ATTRIBUTE = SearchAttributeKey.for_keyword("WorkflowableWorkflow")
EVENT_ATTRIBUTE = SearchAttributeKey.for_keyword("WorkflowableEvent")
SEARCH_ATTRIBUTES = (PROCESS_ID_ATTRIBUTE, STATUS_ATTRIBUTE, WORKFLOW_ATTRIBUTE, EVENT_ATTRIBUTE)


def workflow_id_for(process_id: int) -> str:
    return f"{WORKFLOW_ID_PREFIX}{process_id}"


def process_id_of(workflow_id: str) -> str:
    """The process id in a process's workflow id (the id itself if it is not one)."""
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)



@dataclass
class ConditionStep:
    type_name: str
    parameters: dict[str, Any]


@dataclass
class TransitionStep:
    id: int
    from_activity_id: int | None
    to_activity_id: int
    ordinal: int
    conditions: list[ConditionStep] = field(default_factory=list)  #: in ordinal order


@dataclass
class ActivityStep:
    id: int
    name: str
    type_name: str
    parameters: dict[str, Any]
    max_attempts: int
    timeout_seconds: float


@dataclass
class ProcessPlan:
    """A process's graph and where it stands, loaded once when its workflow starts."""

    process_id: int
    workflow_name: str
    event_name: str
    status: int
    retry_interval_seconds: float
    retry_backoff_seconds: float
    activities: list[ActivityStep]
    transitions: list[TransitionStep]  #: sorted by (from, ordinal)
    position: int | None  #: last_workflow_activity_id
    tokens: dict[str, str]
    steps_taken: int  #: attempt rows so far belong to steps 1..steps_taken
    lock_key: str | None = None
    lock_lease_seconds: float = 30.0


@dataclass
class ProcessInput:
    """What starts a process workflow: the process's id and, from a trigger that has just
    written the process, its plan. Without a plan (a sweep, a retry, a swap, a lock key) the
    workflow reads it from the mirror as it begins; with one, its first attempt writes Running."""

    process_id: int
    plan: ProcessPlan | None = None
    #: the start set the search attributes as the run begins (WorkflowableStatus Running, which a
    #: run with its plan is at once): the workflow need not upsert them. False in inputs written
    #: before the field existed, whose workflows upsert them as they begin, as they did.
    attributes_set: bool = False


@dataclass
class ChooseInput:
    """The transitions leaving the current position whose conditions must be checked."""

    process_id: int
    transitions: list[TransitionStep]
    tokens: dict[str, str]


@dataclass
class ActivityInput:
    process_id: int
    activity_id: int
    activity_name: str
    step: int  #: which execution of an activity in this process: 1, 2, ...
    attempt: int  #: which attempt of that step: 1, 2, ... (the workflow drives retries)
    parameters: dict[str, Any]
    tokens: dict[str, str]
    #: the transitions leaving this activity whose conditions need checking: the activity checks
    #: them as it succeeds, which saves the workflow a local activity
    then_check: list[TransitionStep] = field(default_factory=list)
    #: no transition leaves this activity: its Success write also completes the process
    completes: bool = False
    #: the process's run has not been written as begun (its plan came with its input): this
    #: attempt writes that first, and runs only if the process is Running then
    begins_run: bool = False


@dataclass
class ActivityOutput:
    outputs: dict[str, str]
    wait_until: datetime | None = None  #: the activity asks not to check transitions before then
    checked: bool = False  #: whether `then_check` was checked; if so, `chosen` is the first that passed
    chosen: int | None = None
    completed: bool = False  #: the Success write completed the process (it was Running)
    #: with `begins_run`: the status that kept the process from beginning (paused or ended
    #: through the mirror meanwhile); the attempt did not run and wrote nothing
    not_begun: int | None = None


@dataclass
class AttemptClose:
    """An attempt the worker could not close itself (it died or timed out): close it as Failure."""

    process_id: int
    activity_id: int
    run_id: str
    step: int
    attempt: int
    error: str


@dataclass
class ProcessState:
    """The workflow's live view of its process, answered by the `state` query."""

    process_id: int
    status: int
    status_label: str
    position: int | None
    tokens: dict[str, str]
    paused_from: int | None  #: the status a resume returns to
    cancelling: bool
    next_run_at: datetime | None


@dataclass
class StatusChange:
    """A status move for the mirror; it applies only if the transition table allows it."""

    process_id: int
    status: int
    next_run_at: datetime | None = None
    error: str | None = None
    paused_from: int | None = None  #: with Paused: the status a resume returns to
