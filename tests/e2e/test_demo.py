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


async def test_the_demo_workflow_drawn_as_text_and_as_mermaid(client):
    from examples.order_approval import FLOW, install

    await install(client)
    graph = await client.describe_workflow(FLOW)
    words = "\n".join(graph.lines())
    assert f"Workflow {FLOW!r} (Active), started by OrderPlaced" in words
    assert "Listens for ApprovalDecided: its order_id = token order_id" in words
    assert "  reserve -> ask_manager (1): AmountAbove(limit=1000.0)" in words
    assert "  reserve -> charge (2): always" in words
    assert "  ask_manager -> charge (1): workflowable.TokenEquals(key='decision', value='approved')" in words
    assert "  ask_manager -> escalate (3): after 3 s" in words
    assert "Ends after: reject, ship" in words
    drawn = graph.mermaid()
    assert drawn.startswith("flowchart TD\n    start((start))")
    reserve, ask, escalate = (f"a{activity_id}" for activity_id, (name, _) in graph.activities.items() if name in ("reserve", "ask_manager", "escalate"))
    assert f'start -->|"1"| {reserve}' in drawn
    assert f'{reserve} -->|"1: AmountAbove(limit=1000.0)"| {ask}' in drawn
    assert f'{ask} -.->|"3: after 3 s"| {escalate}' in drawn, drawn
    assert drawn.count("--> done((end))") == 2
    assert 'listens1>"listens for ApprovalDecided (order_id = order_id)"]' in drawn
