"""Workflowable: event-triggered workflow processes on Temporal, mirrored to Postgres."""

from __future__ import annotations

from .client import Workflowable
from .db.integrity import IntegrityProblem
from .db.reporting import Attempt, Process, ProcessSummary, Report, Token
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
from .graph import Condition, WorkflowDefinition
from .ops.exiting import run
from .reconcile import Difference, ReconcileResult
from .settings import Settings
from .states import AttemptStatus, ProcessStatus, Request, SwapStatus, WorkflowStatus
from .worker import build_worker
from .workflows.locks import LockState
from .workflows.messages import ProcessState

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
    # running
    "Settings",
    "Workflowable",
    "build_worker",
    "run",
    # reading
    "Process",
    "ProcessSummary",
    "Report",
    "IntegrityProblem",
    "ProcessState",
    "Token",
    "Attempt",
    "SweepResult",
    "LockState",
    "ReconcileResult",
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
