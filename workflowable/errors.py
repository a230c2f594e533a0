"""Every error Workflowable raises on purpose: one base class, one short subclass per failure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .states import ProcessStatus


class WorkflowableError(Exception):
    """Workflowable could not do what was asked."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class InvalidEventPayload(WorkflowableError):
    """The event's fields do not validate."""

    def __init__(self, event: str, errors: Sequence[Mapping[str, Any]]) -> None:
        self.event = event
        self.fields = [".".join(str(part) for part in error["loc"]) or "(event)" for error in errors]
        details = "; ".join(
            f"{field}: {error['msg']}" for field, error in zip(self.fields, errors, strict=True)
        )
        super().__init__(f"invalid payload for event {event}: {details}")


class InvalidParameters(WorkflowableError):
    """The parameters of an activity or condition do not validate."""

    def __init__(self, owner: str, errors: Sequence[Mapping[str, Any]]) -> None:
        self.owner = owner
        self.fields = [".".join(str(part) for part in error["loc"]) for error in errors]
        details = "; ".join(
            f"{field}: {error['msg']}" for field, error in zip(self.fields, errors, strict=True)
        )
        super().__init__(f"invalid parameters for {owner}: {details}")


class InvalidToken(WorkflowableError):
    """A token key or value cannot be stored."""


class TokenTooLarge(InvalidToken):
    """A token value is larger than the `max_token_bytes` setting allows."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        self.key = key
        self.size = size
        self.limit = limit
        super().__init__(
            f"token {key!r} is {size:,} bytes, over the limit of {limit:,} bytes (setting WORKFLOWABLE_MAX_TOKEN_BYTES)"
        )


class TokensTooLarge(InvalidToken):
    """A process's tokens together are larger than the `max_process_tokens_bytes` setting allows."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the process's tokens come to {size:,} bytes, over the limit of {limit:,} bytes "
            "(setting WORKFLOWABLE_MAX_PROCESS_TOKENS_BYTES): every step's Temporal payload carries them all"
        )


class InvalidArgument(WorkflowableError):
    """An argument of a public call has the wrong type or is out of range; nothing was read or written."""


class NonRetryable(WorkflowableError):
    """Raised by an activity handler: the step fails at once, without further attempts."""


class InvalidStateChange(WorkflowableError):
    """The request is not valid for the process in its current status; nothing was changed."""

    def __init__(self, process_id: int, status: ProcessStatus, request: str) -> None:
        self.process_id = process_id
        self.status = status
        self.request = request
        super().__init__(f"process {process_id} is {status.label}: cannot {request} it")


class RequestTimeout(WorkflowableError):
    """The process's workflow did not answer a request in time: no worker serves its queue, or all are busy."""

    def __init__(self, process_id: int, request: str, timeout: float, queue: str) -> None:
        super().__init__(
            f"process {process_id} did not acknowledge {request} within {timeout} s; is a worker serving its queue {queue!r}?"
        )
        self.process_id = process_id
        self.request = request


class ProcessKeptChanging(WorkflowableError):
    """The process moved under a pause, resume or cancel three times in a row (its workflow, or
    other requests, writing between the look and the write); nothing was applied: try again."""

    def __init__(self, process_id: int, request: str) -> None:
        super().__init__(f"process {process_id} kept changing state; {request} was not applied, try again")
        self.process_id = process_id
        self.request = request


class InvalidDefinition(WorkflowableError):
    """The workflow definition is inconsistent."""


class WorkflowNotFound(WorkflowableError):
    """No workflow has that name or id."""


class WorkflowNotEditable(WorkflowableError):
    """Only Draft workflows may be edited."""


class InvalidWorkflowStatusChange(WorkflowableError):
    """The workflow cannot move to that status from where it is."""


class InvalidSwap(WorkflowableError):
    """The swap (or clone, or replace) cannot be made as asked."""


class SwapInProgress(WorkflowableError):
    """A running swap holds back dispatches of this workflow's processes until it completes."""


class UnknownType(WorkflowableError):
    """The type is not registered with this worker or client."""


class ProcessNotFound(WorkflowableError):
    """No process has that id."""

    def __init__(self, process_id: int) -> None:
        self.process_id = process_id
        super().__init__(f"no workflow process has id {process_id}")


class WaitTimeout(WorkflowableError):
    """A process or swap did not end within the time a wait allowed; it goes on running."""


class DispatchFailed(WorkflowableError):
    """Temporal refused to start a process's workflow for a reason a later try would not change
    (its start payload, say); the process is marked Failed with that reason."""

    def __init__(self, process_id: int, reason: str) -> None:
        self.process_id = process_id
        self.reason = reason
        super().__init__(f"process {process_id} could not be started and is now Failed: {reason}")


class DatabaseNotConfigured(WorkflowableError):
    """No database URL is set and the embedded Postgres is not installed."""


class DatabaseError(WorkflowableError):
    """The mirror's Postgres refused or failed a statement (a missing migration, a permission)."""


class DatabaseUnavailable(DatabaseError):
    """The mirror's Postgres could not be reached, or dropped the connection, for longer than a
    call keeps trying; whatever the call had not committed was not written."""


class TemporalError(WorkflowableError):
    """Temporal refused or failed a request (a permission, a namespace, a limit)."""


class TemporalUnavailable(TemporalError):
    """Temporal could not be reached for longer than a call keeps trying."""


class InternalError(WorkflowableError):
    """Something failed inside Workflowable that it does not expect: a bug, with the original
    exception as the cause."""
