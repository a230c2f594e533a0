"""What users write: events (their fields are the input tokens), activity types and condition types.

An event is a pydantic model; constructing one with a bad payload raises `InvalidEventPayload`
naming every bad field. Activity and condition types are classes with a `Parameters` model and an
async handler. Each activity type runs as its own Temporal activity, registered under its name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError

from .errors import InvalidEventPayload, InvalidParameters, InvalidToken, TokensTooLarge, TokenTooLarge, UnknownType
from .settings import DEFAULT_MAX_PROCESS_TOKENS_BYTES, DEFAULT_MAX_TOKEN_BYTES

#: Longest token key; the column is a varchar of this size.
MAX_TOKEN_KEY_LENGTH = 255
#: Deepest nesting of lists and dicts in a token value (pydantic refuses far deeper ones with
#: an error that names no field; nothing real nests this deep).
MAX_TOKEN_DEPTH = 100


def encode_token_value(value: Any, *, key: str = "?") -> str:
    """Token values are text: strings are kept verbatim, anything else is stored as JSON."""
    if not isinstance(value, str):
        try:
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidToken(f"token {key!r}: a value of type {type(value).__name__} cannot be stored: {exc}") from None
    _check_text(value, f"the value of token {key!r}")
    return value


def check_token_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_TOKEN_KEY_LENGTH:
        raise InvalidToken(f"token keys are non-empty strings of at most {MAX_TOKEN_KEY_LENGTH} characters, got {key!r}")
    _check_text(key, f"token key {key!r}")
    return key


def check_token_sizes(tokens: Mapping[str, str], limit: int, *, total_limit: int | None = None) -> None:
    """Refuse a token whose value is over `limit` bytes of UTF-8 (the max_token_bytes setting)
    and, with `total_limit` (max_process_tokens_bytes), tokens whose keys and values together are."""
    total = 0
    for key, value in tokens.items():
        size = len(value.encode("utf-8"))
        if size > limit:
            raise TokenTooLarge(key, size, limit)
        total += size + len(key.encode("utf-8"))
    if total_limit is not None and total > total_limit:
        raise TokensTooLarge(total, total_limit)


def check_storable(value: Any, field: str) -> None:
    """Refuse, naming the field (and the place inside it), what would not be stored as given:
    text that is not Unicode (a lone surrogate, in a key too, which the JSON encoder would
    rewrite), bytes that are not UTF-8, a container that contains itself, nesting deeper than
    MAX_TOKEN_DEPTH. Runs before the value is serialized, whose own errors name no field."""
    _check_storable(value, field, "", 0, set())


def _check_storable(value: Any, field: str, path: str, depth: int, open_containers: set[int]) -> None:
    where = field + (path if len(path) <= 80 else f"{path[:40]}...{path[-37:]}")
    if isinstance(value, str):
        _check_unicode(value, where)
    elif isinstance(value, bytes | bytearray):
        try:
            bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidToken(f"{where}: bytes that are not UTF-8 text cannot be stored") from None
    elif isinstance(value, Mapping | list | tuple | set | frozenset):
        if depth >= MAX_TOKEN_DEPTH:
            raise InvalidToken(f"{field}: nested more than {MAX_TOKEN_DEPTH} levels deep")
        if id(value) in open_containers:
            raise InvalidToken(f"{where}: contains itself, which cannot be stored")
        open_containers.add(id(value))
        if isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str):
                    _check_unicode(key, f"{where}: key {key!r}")
                _check_storable(item, field, f"{path}.{key}", depth + 1, open_containers)
        else:
            for index, item in enumerate(value):
                _check_storable(item, field, f"{path}[{index}]", depth + 1, open_containers)
        open_containers.discard(id(value))
    elif isinstance(value, BaseModel):
        _check_storable(dict(value), field, path, depth + 1, open_containers)


def _check_unicode(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidToken(f"{what} is not valid Unicode text: {exc.reason}") from None


def _check_text(text: str, what: str) -> None:
    """Postgres text holds any Unicode but NUL, and only what encodes as UTF-8."""
    if "\x00" in text:
        raise InvalidToken(f"{what} contains a NUL character, which Postgres text cannot hold")
    _check_unicode(text, what)


class WorkflowEvent(BaseModel):
    """Base of every event. Its typed fields are the input tokens of the processes it creates.

    The event's name is its class name. The class variable `task_queue` names the Temporal task
    queue its processes run on (unset: the `task_queue` setting).
    """

    # NaN and infinity reach encode_token_value as floats, which refuses them, instead of
    # turning silently into null.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    task_queue: ClassVar[str | None] = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidEventPayload(type(self).event_name(), exc.errors()) from None

    @classmethod
    def event_name(cls) -> str:
        return cls.__name__

    @classmethod
    def class_path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def workflow_process_lock_key(self) -> str | None:
        """Override to serialize processes: those whose events give the same key never run
        activities at the same time (the original's getWorkflowProcessLockKey()). None: no lock."""
        return None

    @classmethod
    def token_keys(cls) -> list[str]:
        """The keys of the input tokens this event gives its processes (aliases where set)."""
        return [field.alias or name for name, field in cls.model_fields.items()]

    def to_tokens(self) -> dict[str, str]:
        """The input tokens: one per field, named by its alias if it has one, values as text.
        Raises `InvalidToken` naming the field for a value that cannot be stored as given."""
        self._check_storable()
        try:
            fields = self.model_dump(mode="json", by_alias=True, warnings=False)
        except (PydanticSerializationError, ValueError, RecursionError) as exc:
            raise InvalidToken(f"event {self.event_name()} has a field that cannot be stored as a token: {exc}") from None
        return {check_token_key(key): encode_token_value(value, key=key) for key, value in fields.items()}

    def revalidated(self) -> WorkflowEvent:
        """The event built again from its fields: `model_construct()` or mutation could have
        bypassed the constructor's validation. Raises `InvalidEventPayload` or `InvalidToken`."""
        self._check_storable()  # first: serializing a value that cannot be stored fails without naming it
        try:
            dumped = self.model_dump(by_alias=True, warnings=False)
        except (PydanticSerializationError, ValueError, RecursionError) as exc:
            raise InvalidToken(f"event {self.event_name()} has a field that cannot be stored as a token: {exc}") from None
        return type(self)(**dumped)

    def _check_storable(self) -> None:
        for name, info in type(self).model_fields.items():
            check_storable(getattr(self, name, None), f"event {self.event_name()} field {info.alias or name!r}")


class NoParameters(BaseModel):
    """For types that take no parameters."""

    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=BaseModel)


class _ConfigurableType:
    """What activity and condition types share: a name, a parameters model, validation, and
    the input tokens it reads (`requires_tokens`), which `workflowable verify-integrity`
    checks every event that runs it provides."""

    name: ClassVar[str | None] = None
    Parameters: ClassVar[type[BaseModel]] = NoParameters
    requires_tokens: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def type_name(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def class_path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def validate_parameters(cls, parameters: Mapping[str, Any], *, owner: str | None = None) -> BaseModel:
        try:
            return cls.Parameters.model_validate(dict(parameters))
        except ValidationError as exc:
            raise InvalidParameters(owner or cls.type_name(), exc.errors()) from None


@dataclass
class ActivityContext(Generic[P]):
    """What an activity handler sees: the process's tokens, its parameters, a way to write outputs."""

    process_id: int
    activity_id: int
    activity_name: str
    attempt: int
    tokens: Mapping[str, str]
    parameters: P
    outputs: dict[str, str] = field(default_factory=dict)
    wait_until: datetime | None = None
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    max_process_tokens_bytes: int = DEFAULT_MAX_PROCESS_TOKENS_BYTES

    def set_output(self, key: str, value: Any) -> None:
        """Write an output token; it commits with this attempt's Success row, or not at all.
        Raises `InvalidToken` (the step fails without further attempts) for a value that
        cannot be stored, is over the max_token_bytes setting, or brings the process's tokens
        over max_process_tokens_bytes."""
        check_token_key(key)
        encoded = {key: encode_token_value(value, key=key)}
        check_token_sizes({**self.tokens, **self.outputs, **encoded}, self.max_token_bytes, total_limit=self.max_process_tokens_bytes)
        self.outputs.update(encoded)

    def retry_transitions_at(self, when: datetime) -> None:
        """If no transition passes after this activity, wait until `when` (not just the
        workflow's retry_interval) before checking them again."""
        if when.tzinfo is None:
            raise ValueError("retry_transitions_at wants a timezone-aware datetime")
        self.wait_until = when


class ActivityType(_ConfigurableType, Generic[P]):
    """Base of every activity type. Failure is signalled by raising; each attempt is logged.

    Class variables: `name` (the Temporal activity name, defaults to the class name),
    `Parameters` (a pydantic model), and optional `max_attempts` and `timeout` that override the
    workflow's retry policy for activities of this type.
    """

    max_attempts: ClassVar[int | None] = None
    timeout: ClassVar[timedelta | None] = None

    async def handle(self, ctx: ActivityContext[P]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.handle")


@dataclass(frozen=True)
class ConditionContext(Generic[P]):
    """What a condition sees: the process's tokens and the condition's parameters."""

    process_id: int
    tokens: Mapping[str, str]
    parameters: P


class ConditionType(_ConfigurableType, Generic[P]):
    """Base of every condition type: `check` says whether a transition may be taken."""

    async def check(self, ctx: ConditionContext[P]) -> bool:
        raise NotImplementedError(f"{type(self).__name__}.check")


@dataclass(frozen=True)
class Catalog:
    """The event, activity and condition types one application uses, each by its name."""

    events: Mapping[str, type[WorkflowEvent]]
    activities: Mapping[str, type[ActivityType[Any]]]
    conditions: Mapping[str, type[ConditionType[Any]]]

    @classmethod
    def of(cls, types: Iterable[type]) -> Catalog:
        events: dict[str, type[WorkflowEvent]] = {}
        activities: dict[str, type[ActivityType[Any]]] = {}
        conditions: dict[str, type[ConditionType[Any]]] = {}
        for kind in types:
            if isinstance(kind, type) and issubclass(kind, WorkflowEvent):
                _add(events, kind.event_name(), kind)
            elif isinstance(kind, type) and issubclass(kind, ActivityType):
                _add(activities, kind.type_name(), kind)
            elif isinstance(kind, type) and issubclass(kind, ConditionType):
                _add(conditions, kind.type_name(), kind)
            else:
                raise UnknownType(f"{kind!r} is not a WorkflowEvent, ActivityType or ConditionType subclass")
        return cls(events=events, activities=activities, conditions=conditions)

    def including(self, conditions: Iterable[type[ConditionType[Any]]]) -> Catalog:
        """This catalog with `conditions` added, but for names it has already."""
        added = {kind.type_name(): kind for kind in conditions if kind.type_name() not in self.conditions}
        return Catalog(events=self.events, activities=self.activities, conditions={**self.conditions, **added})

    def activity(self, name: str) -> type[ActivityType[Any]]:
        try:
            return self.activities[name]
        except KeyError:
            raise UnknownType(f"activity type {name!r} is not registered with this worker") from None

    def condition(self, name: str) -> type[ConditionType[Any]]:
        try:
            return self.conditions[name]
        except KeyError:
            raise UnknownType(f"condition type {name!r} is not registered with this worker") from None


def _add(into: dict[str, Any], name: str, kind: type) -> None:
    if name in into and into[name] is not kind:
        raise UnknownType(f"two types share the name {name!r}: {into[name].__qualname__} and {kind.__qualname__}")
    into[name] = kind
