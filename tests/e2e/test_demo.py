"""The demo, on the test session's servers: every order ends Completed along the path its amount
and its manager's decision (or its deadline) give, and the demo explains the escalated one."""

from __future__ import annotations

import io

from rich.console import Console

from examples.order_approval import run_demo
from tests.conftest import unique


async def test_the_demo_completes_every_order_along_its_path(settings):
    out = io.StringIO()
    ok = await run_demo(settings.model_copy(update={"task_queue": unique("demo")}), 8, Console(file=out, width=250))
    shown = out.getvalue()
    assert ok, shown
    assert "reserve -> ask_manager -> escalate -> charge -> ship" in shown, "the undecided order was escalated at its deadline"
    assert "reserve -> ask_manager -> reject" in shown and "reserve -> ask_manager -> charge -> ship" in shown
    assert "transition 'ask_manager -> escalate' (3) passed on a check after deadline" in shown
    assert "transition 'escalate -> charge' (1) passed on a check after event delivered" in shown
