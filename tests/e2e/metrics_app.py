"""Types served by the worker subprocesses in test_metrics.py."""

from __future__ import annotations

import logging

from tests.e2e.flows import Boom, Sleep
from workflowable import ActivityContext, ActivityType, WorkflowEvent


class MeteredEvent(WorkflowEvent):
    n: int


class MeteredFailure(WorkflowEvent):
    n: int


class LoggedEvent(WorkflowEvent):
    n: int


class Chatty(ActivityType):
    """Logs through an ordinary logger of its own, as application code does."""

    async def handle(self, ctx: ActivityContext) -> None:
        logging.getLogger("tests.chatty").warning("chatting about order %s", ctx.tokens["n"])


TYPES = [MeteredEvent, MeteredFailure, LoggedEvent, Sleep, Boom, Chatty]
