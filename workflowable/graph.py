"""Building a workflow in code: activities, transitions (entry ones included), conditions,
deadlines, and the events its running processes listen for.

A `WorkflowDefinition` is checked as it is built (parameters validated, transitions only between
its own activities) and saved in one transaction by `Workflowable.save_workflow`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from .definitions import ActivityType, ConditionType, WorkflowEvent
from .errors import InvalidDefinition


def _seconds(value: timedelta | float, what: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise InvalidDefinition(f"{what} must be positive, got {seconds} seconds")
    return seconds


@dataclass(frozen=True)
class Condition:
    """A condition type configured with parameters, placed on a transition."""

    condition_type: type[ConditionType[Any]]
    parameters: BaseModel

    def __init__(self, condition_type: type[ConditionType[Any]], parameters: Mapping[str, Any] | None = None) -> None:
        if not (isinstance(condition_type, type) and issubclass(condition_type, ConditionType)):
            raise InvalidDefinition(f"{condition_type!r} is not a ConditionType subclass")
        owner = f"condition {condition_type.type_name()}"
        object.__setattr__(self, "condition_type", condition_type)
        object.__setattr__(self, "parameters", condition_type.validate_parameters(parameters or {}, owner=owner))


@dataclass(frozen=True)
class ActivityRef:
    """A configured activity of a definition; refer to it when adding transitions."""

    name: str
    activity_type: type[ActivityType[Any]]
    parameters: BaseModel
    description: str | None = None
    max_attempts: int | None = None
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class Transition:
    source: ActivityRef | None  #: None: an entry transition, taken from the start
    target: ActivityRef
    ordinal: int
    name: str
    conditions: tuple[Condition, ...]
    #: a deadline: the transition passes only once the process has waited this long at `source`
    after_seconds: float | None = None


@dataclass(frozen=True)
class Listener:
    """The workflow's live processes receive `event` when each of its fields in `match` equals
    the process's token of the name it maps to."""

    event: type[WorkflowEvent]
    match: dict[str, str]  #: event field -> process token key


@dataclass
class WorkflowDefinition:
    """A named graph of activities bound to one event.

    `retry_interval` is how long a process waits before checking its transitions again when
    none passes; `max_attempts`, `retry_backoff` and `activity_timeout` are the retry policy of
    its activities unless an activity or its type says otherwise.
    """

    name: str
    event: type[WorkflowEvent]
    priority: int = 0
    retry_interval: timedelta | float = 300
    max_attempts: int = 3
    retry_backoff: timedelta | float = 1.0
    activity_timeout: timedelta | float = 300
    description: str | None = None
    activities: dict[str, ActivityRef] = field(default_factory=dict, init=False)
    transitions: list[Transition] = field(default_factory=list, init=False)
    listeners: list[Listener] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 255:
            raise InvalidDefinition("a workflow name is 1 to 255 characters")
        if not (isinstance(self.event, type) and issubclass(self.event, WorkflowEvent)):
            raise InvalidDefinition(f"workflow {self.name!r}: {self.event!r} is not a WorkflowEvent subclass")
        if self.priority < 0:
            raise InvalidDefinition(f"workflow {self.name!r}: priority must be >= 0")
        if self.max_attempts < 1:
            raise InvalidDefinition(f"workflow {self.name!r}: max_attempts must be >= 1")
        for what in ("retry_interval", "retry_backoff", "activity_timeout"):
            _seconds(getattr(self, what), f"workflow {self.name!r}: {what}")

    def activity(
        self,
        name: str,
        activity_type: type[ActivityType[Any]],
        parameters: Mapping[str, Any] | None = None,
        *,
        description: str | None = None,
        max_attempts: int | None = None,
        timeout: timedelta | float | None = None,
    ) -> ActivityRef:
        """Add an activity of `activity_type` with validated `parameters`."""
        if not (isinstance(activity_type, type) and issubclass(activity_type, ActivityType)):
            raise InvalidDefinition(f"{activity_type!r} is not an ActivityType subclass")
        if not name or len(name) > 255 or name in self.activities:
            raise InvalidDefinition(f"workflow {self.name!r}: activity name {name!r} is empty, too long or already used")
        max_attempts = max_attempts if max_attempts is not None else activity_type.max_attempts
        if max_attempts is not None and max_attempts < 1:
            raise InvalidDefinition(f"activity {name!r}: max_attempts must be >= 1")
        timeout = timeout if timeout is not None else activity_type.timeout
        owner = f"activity {name!r} ({activity_type.type_name()})"
        ref = ActivityRef(
            name=name,
            activity_type=activity_type,
            parameters=activity_type.validate_parameters(parameters or {}, owner=owner),
            description=description,
            max_attempts=max_attempts,
            timeout_seconds=None if timeout is None else _seconds(timeout, f"activity {name!r}: timeout"),
        )
        self.activities[name] = ref
        return ref

    def start(
        self,
        target: ActivityRef,
        *,
        when: Sequence[Condition] = (),
        after: timedelta | float | None = None,
        ordinal: int | None = None,
        name: str | None = None,
    ) -> Transition:
        """Add an entry transition: taken from the start, before any activity ran."""
        return self.transition(None, target, when=when, after=after, ordinal=ordinal, name=name)

    def transition(
        self,
        source: ActivityRef | None,
        target: ActivityRef,
        *,
        when: Sequence[Condition] = (),
        after: timedelta | float | None = None,
        ordinal: int | None = None,
        name: str | None = None,
    ) -> Transition:
        """Add a transition; those leaving one activity are tried in `ordinal` order (default: next).

        `when`: conditions that must all pass. `after`: a deadline; the transition passes only
        once the process has waited that long at `source` (with `when`, both must hold). A
        waiting process wakes at its earliest deadline, so "remind after a day, escalate after
        three" needs no polling."""
        for ref in (source, target):
            if ref is not None and self.activities.get(ref.name) is not ref:
                raise InvalidDefinition(f"workflow {self.name!r}: activity {ref.name!r} does not belong to it")
        siblings = [t for t in self.transitions if t.source is source]
        if ordinal is None:
            ordinal = max((t.ordinal for t in siblings), default=0) + 1
        if not 0 <= ordinal <= 32767 or any(t.ordinal == ordinal for t in siblings):
            raise InvalidDefinition(f"workflow {self.name!r}: ordinal {ordinal} is out of range or already used from there")
        if not all(isinstance(condition, Condition) for condition in when):
            raise InvalidDefinition("conditions are given as Condition(ConditionType, parameters)")
        after_seconds = None if after is None else _seconds(after, f"workflow {self.name!r}: after")
        default_name = f"{source.name if source else 'start'} -> {target.name}"
        transition = Transition(source, target, ordinal, name or default_name, tuple(when), after_seconds)
        self.transitions.append(transition)
        return transition

    def listen(self, event: type[WorkflowEvent], match: Mapping[str, str] | Sequence[str]) -> Listener:
        """Have this workflow's live processes receive `event` (`Workflowable.trigger_event`
        delivers it): those whose tokens equal the event's fields in `match`, a mapping of event
        field to token key, or a list of names that are both. A delivery writes the event's
        fields as tokens of the process and makes it check its transitions at once."""
        if not (isinstance(event, type) and issubclass(event, WorkflowEvent)):
            raise InvalidDefinition(f"workflow {self.name!r}: {event!r} is not a WorkflowEvent subclass")
        if any(listener.event is event for listener in self.listeners):
            raise InvalidDefinition(f"workflow {self.name!r} already listens for {event.event_name()}")
        pairs = dict(match) if isinstance(match, Mapping) else {name: name for name in match}
        if not pairs or isinstance(match, str):
            raise InvalidDefinition(f"workflow {self.name!r}: listening for {event.event_name()} needs at least one field to match on")
        fields = {info.alias or name for name, info in event.model_fields.items()}
        for event_field, token_key in pairs.items():
            if event_field not in fields:
                raise InvalidDefinition(f"workflow {self.name!r}: {event.event_name()} has no field {event_field!r} (it has {', '.join(sorted(fields))})")
            if not isinstance(token_key, str) or not token_key or len(token_key) > 255:
                raise InvalidDefinition(f"workflow {self.name!r}: a token key is 1 to 255 characters, got {token_key!r}")
        listener = Listener(event, pairs)
        self.listeners.append(listener)
        return listener

    @property
    def retry_interval_seconds(self) -> float:
        return _seconds(self.retry_interval, "retry_interval")

    @property
    def retry_backoff_seconds(self) -> float:
        return _seconds(self.retry_backoff, "retry_backoff")

    @property
    def activity_timeout_seconds(self) -> float:
        return _seconds(self.activity_timeout, "activity_timeout")

    def check(self) -> None:
        """A saved workflow needs at least one entry transition to do anything."""
        if not any(t.source is None for t in self.transitions):
            raise InvalidDefinition(f"workflow {self.name!r} has no entry transition (add one with .start(...))")
