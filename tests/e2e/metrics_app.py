"""Types served by the worker subprocess in test_metrics.py."""

from __future__ import annotations

from tests.e2e.flows import Boom, Sleep
from workflowable import WorkflowEvent


class MeteredEvent(WorkflowEvent):
    n: int


class MeteredFailure(WorkflowEvent):
    n: int


TYPES = [MeteredEvent, MeteredFailure, Sleep, Boom]
