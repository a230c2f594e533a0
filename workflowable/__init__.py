"""Workflowable: event-triggered workflow processes on Temporal, mirrored to Postgres.

The public API is `__all__`. Names load on first use (PEP 562), so that importing one light
module (`workflowable.states`, say, which workflow code does in Temporal's sandbox) does not
load the client, SQLAlchemy, psycopg and the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Workflowable
    from .conditions import TokenEquals, TokenPresent
    from .db.drawing import SavedGraph
    from .db.explain import Explanation
    from .db.integrity import IntegrityProblem
    from .db.partitions import Partition
    from .db.reporting import Attempt, Process, ProcessSummary, Report, Token
    from .db.retention import PruneResult
    from .db.versions import SwapInfo
    from .definitions import ActivityContext, ActivityType, Catalog, ConditionContext, ConditionType, NoParameters, WorkflowEvent
    from .dispatch import SweepResult
    from .errors import (
        DatabaseError,
        DatabaseNotConfigured,
        DatabaseUnavailable,
        DispatchFailed,
        InternalError,
        InvalidArgument,
        InvalidDefinition,
        InvalidEventPayload,
        InvalidParameters,
        InvalidStateChange,
        InvalidSwap,
        InvalidToken,
        InvalidWorkflowStatusChange,
        NonRetryable,
        ProcessKeptChanging,
        ProcessNotFound,
        RequestTimeout,
        SwapInProgress,
        TemporalError,
        TemporalUnavailable,
        TokensTooLarge,
        TokenTooLarge,
        UnknownType,
        WaitTimeout,
        WorkflowableError,
        WorkflowNotEditable,
        WorkflowNotFound,
    )
    from .graph import Condition, Listener, WorkflowDefinition
    from .ops.exiting import run
    from .reconcile import Difference, ReconcileResult
    from .requests import BulkResult
    from .settings import Settings
    from .states import AttemptStatus, ProcessStatus, Request, SwapStatus, WorkflowStatus
    from .trigger import Delivered, Triggered
    from .worker import build_worker
    from .workflows.locks import LockState
    from .workflows.messages import ProcessState

#: Each public name and the module that defines it (a test checks it against the imports above).
_EXPORTS: dict[str, str] = {
    "Workflowable": "client",
    "TokenEquals": "conditions",
    "TokenPresent": "conditions",
    "SavedGraph": "db.drawing",
    "Explanation": "db.explain",
    "IntegrityProblem": "db.integrity",
    "Partition": "db.partitions",
    "Attempt": "db.reporting",
    "Process": "db.reporting",
    "ProcessSummary": "db.reporting",
    "Report": "db.reporting",
    "Token": "db.reporting",
    "PruneResult": "db.retention",
    "SwapInfo": "db.versions",
    "ActivityContext": "definitions",
    "ActivityType": "definitions",
    "Catalog": "definitions",
    "ConditionContext": "definitions",
    "ConditionType": "definitions",
    "NoParameters": "definitions",
    "WorkflowEvent": "definitions",
    "SweepResult": "dispatch",
    "DatabaseError": "errors",
    "DatabaseNotConfigured": "errors",
    "DatabaseUnavailable": "errors",
    "DispatchFailed": "errors",
    "InternalError": "errors",
    "InvalidArgument": "errors",
    "InvalidDefinition": "errors",
    "InvalidEventPayload": "errors",
    "InvalidParameters": "errors",
    "InvalidStateChange": "errors",
    "InvalidSwap": "errors",
    "InvalidToken": "errors",
    "InvalidWorkflowStatusChange": "errors",
    "NonRetryable": "errors",
    "ProcessNotFound": "errors",
    "ProcessKeptChanging": "errors",
    "RequestTimeout": "errors",
    "SwapInProgress": "errors",
    "TemporalError": "errors",
    "TemporalUnavailable": "errors",
    "TokensTooLarge": "errors",
    "TokenTooLarge": "errors",
    "UnknownType": "errors",
    "WaitTimeout": "errors",
    "WorkflowableError": "errors",
    "WorkflowNotEditable": "errors",
    "WorkflowNotFound": "errors",
    "Condition": "graph",
    "Listener": "graph",
    "WorkflowDefinition": "graph",
    "run": "ops.exiting",
    "Difference": "reconcile",
    "ReconcileResult": "reconcile",
    "BulkResult": "requests",
    "Settings": "settings",
    "AttemptStatus": "states",
    "ProcessStatus": "states",
    "Request": "states",
    "SwapStatus": "states",
    "WorkflowStatus": "states",
    "Delivered": "trigger",
    "Triggered": "trigger",
    "build_worker": "worker",
    "LockState": "workflows.locks",
    "ProcessState": "workflows.messages",
}

__all__ = [
    # definitions
    "WorkflowEvent",
    "ActivityType",
    "ActivityContext",
    "ConditionType",
    "ConditionContext",
    "NoParameters",
    "Catalog",
    "WorkflowDefinition",
    "Condition",
    "Listener",
    "TokenPresent",
    "TokenEquals",
    # running
    "Settings",
    "Workflowable",
    "build_worker",
    "run",
    # reading
    "Triggered",
    "Delivered",
    "Process",
    "Explanation",
    "SavedGraph",
    "ProcessSummary",
    "Report",
    "IntegrityProblem",
    "ProcessState",
    "Token",
    "Attempt",
    "SweepResult",
    "LockState",
    "ReconcileResult",
    "PruneResult",
    "Partition",
    "BulkResult",
    "Difference",
    "Request",
    "ProcessStatus",
    "WorkflowStatus",
    "SwapInfo",
    "SwapStatus",
    "AttemptStatus",
    # errors
    "WorkflowableError",
    "InvalidArgument",
    "InvalidEventPayload",
    "InvalidParameters",
    "InvalidToken",
    "TokenTooLarge",
    "TokensTooLarge",
    "InvalidStateChange",
    "InvalidSwap",
    "SwapInProgress",
    "NonRetryable",
    "InvalidDefinition",
    "WorkflowNotFound",
    "WorkflowNotEditable",
    "InvalidWorkflowStatusChange",
    "UnknownType",
    "ProcessNotFound",
    "ProcessKeptChanging",
    "RequestTimeout",
    "WaitTimeout",
    "DispatchFailed",
    "DatabaseNotConfigured",
    "DatabaseError",
    "DatabaseUnavailable",
    "TemporalError",
    "TemporalUnavailable",
    "InternalError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workflowable' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
