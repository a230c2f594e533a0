"""Types served by the worker subprocess in test_cli.py."""

from __future__ import annotations

import asyncio
import os

from workflowable import ActivityContext, ActivityType, WorkflowEvent


class CliEvent(WorkflowEvent):
    word: str


class Shout(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("shouted", ctx.tokens["word"].upper())


class WhoAmIEvent(WorkflowEvent):
    n: int


class WhoAmI(ActivityType):
    """Notes which worker process ran it."""

    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(0.05)
        ctx.set_output(f"pid_{ctx.activity_name}", os.getpid())


TYPES = [CliEvent, Shout, WhoAmIEvent, WhoAmI]
