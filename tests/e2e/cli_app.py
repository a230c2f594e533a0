"""Types served by the worker subprocess in test_cli.py."""

from __future__ import annotations

from workflowable import ActivityContext, ActivityType, WorkflowEvent


class CliEvent(WorkflowEvent):
    word: str


class Shout(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("shouted", ctx.tokens["word"].upper())


TYPES = [CliEvent, Shout]
