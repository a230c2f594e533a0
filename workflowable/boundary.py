"""The public API's edge: where driver and Temporal errors become Workflowable errors, and where
arguments are checked before anything is read or written.

Every public method of `Workflowable` and every CLI command goes through `translate`, so a
caller sees only `WorkflowableError` subclasses (the original exception is kept as the cause,
for a traceback). Transient faults are retried below this edge, where a retry is known to be
safe: connecting to Postgres (`database.connect_with_retry`), and every Temporal call (the
SDK's own retry of an unavailable server); what is still failing when they give up arrives
here and is named `DatabaseUnavailable` or `TemporalUnavailable`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import TemporalError as SdkError
from temporalio.service import RPCError, RPCStatusCode

from .db.database import is_transient
from .errors import (
    DatabaseError,
    DatabaseUnavailable,
    InternalError,
    InvalidArgument,
    ProcessNotFound,
    TemporalError,
    TemporalUnavailable,
    WorkflowableError,
)

#: Temporal answers that mean it could not be reached or did not answer in time; the SDK has
#: retried them already (about 10 s by default) before they reach the caller.
TEMPORAL_TRANSIENT = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED})

#: Ids are Postgres bigints.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def translate(exc: Exception) -> WorkflowableError:
    """The Workflowable error that stands for `exc`, naming what went wrong."""
    if isinstance(exc, WorkflowableError):
        return exc
    if isinstance(exc, sa.exc.SQLAlchemyError | psycopg.Error):
        reason = _first_line(getattr(exc, "orig", None) or exc)
        if is_transient(exc):
            return DatabaseUnavailable(f"the mirror's Postgres is unavailable: {reason}")
        if isinstance(getattr(exc, "orig", exc), psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
            return DatabaseError(f"the mirror's schema is missing or old ({reason}); run `workflowable db upgrade`")
        return DatabaseError(f"the mirror's Postgres refused a statement: {reason}")
    if isinstance(exc, RPCError):
        if exc.status in TEMPORAL_TRANSIENT:
            return TemporalUnavailable(f"Temporal is unavailable ({exc.status.name}): {exc.message}")
        return TemporalError(f"Temporal refused the request ({exc.status.name if exc.status else 'no status'}): {exc.message}")
    if isinstance(exc, WorkflowUpdateRPCTimeoutOrCancelledError):
        return TemporalUnavailable("Temporal did not answer the request in time")
    if isinstance(exc, SdkError):
        return TemporalError(f"Temporal: {type(exc).__name__}: {exc}")
    if isinstance(exc, OSError) and exc.filename is not None:  # a file the caller named (a report's path, say)
        return InvalidArgument(f"cannot use {exc.filename}: {exc.strerror}")
    return InternalError(f"unexpected {type(exc).__name__} inside Workflowable (please report it): {exc}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


T = TypeVar("T")


def typed(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
    """`method`, raising only Workflowable errors."""

    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> T:
        try:
            return await method(*args, **kwargs)
        except WorkflowableError:
            raise
        except Exception as exc:
            raise translate(exc) from exc

    return call


C = TypeVar("C", bound=type)


def public_api(cls: C) -> C:
    """Make every public coroutine method of `cls` (classmethods included) `typed`, so that one
    added later cannot forget to be."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(member, classmethod) and inspect.iscoroutinefunction(member.__func__):
            setattr(cls, name, classmethod(typed(member.__func__)))
        elif inspect.iscoroutinefunction(member):
            setattr(cls, name, typed(member))
    return cls


def check_id(value: object, what: str = "process", not_found: Callable[[int], WorkflowableError] = ProcessNotFound) -> int:
    """An id as a caller gave it, checked before any SQL: an int (not a bool) in Postgres's
    bigint range. One out of the range names no row: `not_found(value)`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"a {what} id is an int, got {type(value).__name__} {value!r:.60}")
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise not_found(value)
    return value
