"""Built-in condition types for the common checks on a process's tokens, so that a flow that
waits for an event ("the approval has come", "the payment says paid") needs no custom code.
Every worker registers them (`build_worker`); use them as any condition:
`when=[Condition(TokenEquals, {"key": "decision", "value": "approved"})]`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .definitions import ConditionContext, ConditionType, encode_token_value


class TokenPresent(ConditionType["TokenPresent.Parameters"]):
    """Passes once the process has a token `key` (an event delivered it, an activity wrote it)."""

    name = "workflowable.TokenPresent"

    class Parameters(BaseModel):
        model_config = ConfigDict(extra="forbid")
        key: str = Field(min_length=1, max_length=255)

    async def check(self, ctx: ConditionContext[TokenPresent.Parameters]) -> bool:
        return ctx.parameters.key in ctx.tokens


class TokenEquals(ConditionType["TokenEquals.Parameters"]):
    """Passes when the process's token `key` equals `value` (a string as it is, anything else
    as the JSON a token holds: `true`, `3`, ...)."""

    name = "workflowable.TokenEquals"

    class Parameters(BaseModel):
        model_config = ConfigDict(extra="forbid")
        key: str = Field(min_length=1, max_length=255)
        value: Any

    async def check(self, ctx: ConditionContext[TokenEquals.Parameters]) -> bool:
        return ctx.tokens.get(ctx.parameters.key) == encode_token_value(ctx.parameters.value, key=ctx.parameters.key)


#: What every worker registers beside the application's own types.
BUILT_IN: tuple[type[ConditionType[Any]], ...] = (TokenPresent, TokenEquals)
