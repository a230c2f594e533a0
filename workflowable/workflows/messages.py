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

#: Seconds a process that stopped renewing keeps its lock key: the one default (the setting
#: WORKFLOWABLE_LOCK_LEASE takes it from here; the plan carries the lease to the workflow).
DEFAULT_LOCK_LEASE_SECONDS = 30.0

#: The workflow type that interprets every workflow graph (process.py), and its ids. Runs
#: started before it replaced the first type keep running on that one (process_v1.py).
PROCESS_WORKFLOW = "WorkflowProcessV2"
PROCESS_WORKFLOW_V1 = "WorkflowProcess"
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


class Activities:
    """The names of the worker's own activities (activity types run under their type's name)."""

    BEGIN_PROCESS = "workflowable.begin_process"
    WRITE_STATUS = "workflowable.write_status"
    SET_STATUS = "workflowable.set_status"  #: process_v1's write (a bool: whether it applied)
    CHOOSE_TRANSITION = "workflowable.choose_transition"
    RECORD_DELIVERY = "workflowable.record_delivery"
    CLOSE_ATTEMPT = "workflowable.close_attempt"
    REQUEST_CANCEL = "workflowable.request_cancel"
    REQUEST_LOCK = "workflowable.request_lock"
    SWAP_PROCESS = "workflowable.swap_process"
    SWAP_BEGIN = "workflowable.swap_begin"
    SWAP_STEP = "workflowable.swap_step"
    SWAP_FINISH = "workflowable.swap_finish"
    PROCESS_RUNS = "workflowable.process_runs"


class Signals:
    """Signal, update and query names of the process workflow: what `temporal workflow signal
    --name ...` takes. pause, resume and cancel are both signals and updates."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    WAKE = "wake"
    DELIVER = "deliver"  #: an event delivered to the process (argument: a `Delivery`)
    SWAP = "swap"  #: from a swap's runner (argument: the swap id)
    GRANTED = "granted"  #: from a lock workflow
    LOST = "lost"
    STATE = "state"  #: the query
    # The lock workflow's (locks.py): join the queue, renew the lease, give the key back, leave the queue.
    ACQUIRE = "acquire"
    RENEW = "renew"
    RELEASE = "release"
    WITHDRAW = "withdraw"


class Metrics:
    """Workflowable's metric names, recorded through Temporal's metric meters and exported with
    the SDK's own (docs/operations.md lists them with their labels). Counters are exported with
    `_total` appended, as Prometheus names counters; histograms are in seconds. Those of the
    workflow side are here, where workflow code reads them; the worker's are beside them, so that
    every name is in one place."""

    # The process workflow (replay-safe: Temporal records nothing while it replays)
    PROCESSES_STARTED = "workflowable_processes_started"  #: {workflow}: a process's workflow began (not a continued run)
    PROCESSES_ENDED = "workflowable_processes_ended"  #: {workflow, status}: Completed, Failed or Cancelled
    DELIVERIES = "workflowable_deliveries"  #: {workflow}: events a process took in
    LOCK_WAIT = "workflowable_lock_wait_seconds"  #: {workflow}: from asking for a lock key to holding it
    # The worker's activities
    ATTEMPTS = "workflowable_attempts"  #: {activity_type, outcome}: success, failure, cancelled, not_begun
    ATTEMPT_DURATION = "workflowable_attempt_duration_seconds"  #: {activity_type, outcome}
    MIRROR_WRITE = "workflowable_mirror_write_seconds"  #: {write}: an attempt's write, its retries included
    MIRROR_RETRIES = "workflowable_mirror_write_retries"  #: {write}: tries Postgres did not take


class Cause:
    """Why the transitions are checked: kept with each check in the mirror, for `explain`."""

    SUCCEEDED = "activity succeeded"
    RETRY_INTERVAL = "retry interval"
    DEADLINE = "deadline"
    DELIVERED = "event delivered"
    WOKEN = "woken"
    RESUMED = "resumed"
    BEGAN = "run began"
    CONTINUED = "continued as new"


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
    #: a deadline: it passes only once the process has waited this long at its source
    after_seconds: float | None = None

    @property
    def always(self) -> bool:
        """Whether it passes without a check: no condition and no deadline."""
        return not self.conditions and self.after_seconds is None


@dataclass
class ActivityStep:
    id: int
    name: str
    type_name: str
    parameters: dict[str, Any]
    max_attempts: int
    timeout_seconds: float


@dataclass
class Listening:
    """An event the process's workflow listens for: delivered when each field in `match`
    equals the process's token of the name it maps to."""

    event: str
    match: dict[str, str]


@dataclass
class ProcessPlan:
    """A process's graph and where it stands, loaded once when its workflow starts."""

    # In the order a person reads it in the web UI's Input pane: whose process, then where it
    # stands, then the graph (written last, though every plan has one).
    process_id: int
    workflow_name: str
    event_name: str
    tokens: dict[str, str]
    status: int
    position: int | None  #: last_workflow_activity_id
    steps_taken: int  #: attempt rows so far belong to steps 1..steps_taken
    retry_interval_seconds: float
    retry_backoff_seconds: float
    lock_key: str | None = None
    lock_lease_seconds: float = DEFAULT_LOCK_LEASE_SECONDS
    #: re-checks of the transitions a run makes before it continues as new (history stays bounded)
    checks_per_run: int = 500
    #: events delivered to the process so far (`tokens` holds their fields)
    deliveries: int = 0
    #: when the process reached its position (its deadlines count from then); None: as the run begins
    arrived_at: datetime | None = None
    listens: list[Listening] = field(default_factory=list)  #: what the Temporal UI says it waits for
    activities: list[ActivityStep] = field(default_factory=list)
    transitions: list[TransitionStep] = field(default_factory=list)  #: sorted by (from, ordinal)


@dataclass
class Carried:
    """What a run hands to the next when it continues as new, beside the plan: where the process
    stands. A run continues only while it waits (Pending, or Dispatched before its first check),
    holding no lock key, with no request, attempt, write or swap in flight."""

    status: int
    position: int | None
    tokens: dict[str, str]
    steps_taken: int
    wait_until: datetime | None = None  #: an activity asked not to check before then
    deliveries: int = 0  #: events delivered so far, their fields in `tokens`
    arrived_at: datetime | None = None  #: when the process reached its position


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
    #: set by a run that continued as new: the process's state (the plan comes with it)
    carried: Carried | None = None


@dataclass
class ProcessResult:
    """What a process's workflow returns as it ends well (Completed, or moved by a swap): its
    Result in the web UI. A run that fails or is cancelled returns nothing; the failure says why.
    Runs that ended before this existed returned the status label alone."""

    process_id: int
    workflow_name: str
    status: str  #: the label, as the mirror and the WorkflowableStatus attribute say it
    tokens: dict[str, str]  #: the process's tokens as it ended: its input and every output


@dataclass
class ChooseInput:
    """The transitions leaving the current position whose conditions must be checked."""

    process_id: int
    transitions: list[TransitionStep]
    tokens: dict[str, str]
    #: events delivered that `tokens` holds: later ones are read from the mirror and checked too
    deliveries: int = 0
    waited_seconds: float = 0.0  #: how long the process has been at its position (for deadlines)
    #: the caller reads a `ChooseOutput` (the first workflow type, which does not, reads the id alone)
    with_deliveries: bool = False
    cause: str = ""  #: why the workflow checks now, for the mirror's record of the check


@dataclass
class Delivery:
    """An event delivered to a process: the event's name and fields (now tokens of the
    process), and which delivery to the process it is. The `deliver` signal's argument: a
    trigger sends it once the delivery is recorded; sent by hand (`temporal workflow signal
    --name deliver --input '{"event": "PaymentReceived", "tokens": {"paid": true}}'`), it has no
    `seq` and the workflow records it first."""

    event: str
    tokens: dict[str, Any]
    seq: int = 0  #: the process's 1st, 2nd, ... delivery; 0: not recorded yet


@dataclass
class DeliveryRecord:
    """A delivery sent by hand, for the mirror to record: once, whatever the retries (`signal_id`)."""

    process_id: int
    event: str
    tokens: dict[str, Any]
    signal_id: str


@dataclass
class ChooseOutput:
    """The first transition that passes (None: none), and the deliveries the check read from
    the mirror (the workflow had not heard of them: their signal was lost or is on its way)."""

    chosen: int | None
    deliveries: list[Delivery] = field(default_factory=list)

    @classmethod
    def of(cls, result: Any) -> "ChooseOutput":
        """From the local activity's result, as recorded: histories from before deliveries hold
        the transition id alone."""
        if isinstance(result, dict):
            found = [Delivery(d["event"], dict(d["tokens"]), d["seq"]) for d in result.get("deliveries", ())]
            return cls(result.get("chosen"), found)
        return cls(result)


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
    workflow_name: str = ""  #: for the attempt's trace and log


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
class StatusWrite:
    """A status the process workflow writes to the mirror (and the run writing it). Pending may be
    written again, with a new next_run_at; any other move applies only along the transition table."""

    process_id: int
    status: int
    run_id: str
    next_run_at: datetime | None = None
    error: str | None = None
    paused_from: int | None = None


@dataclass
class StatusChange:
    """A status move for the mirror; it applies only if the transition table allows it."""

    process_id: int
    status: int
    next_run_at: datetime | None = None
    error: str | None = None
    paused_from: int | None = None  #: with Paused: the status a resume returns to
