"""What a person sees of a process in Temporal's own web UI, rendered in headless Chromium: the
Input pane leads with the process, its workflow, its event and input tokens (the graph after
them); the Result carries the final status and tokens; each attempt is named by its summary and
its result holds only what it says. A Temporal dev server of the test's own serves the UI (the
session's runs headless)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil

from tests.conftest import serving, unique
from tests.e2e.browser import render, text_of
from workflowable import ActivityContext, ActivityType, Workflowable, WorkflowDefinition, WorkflowEvent
from workflowable.ops.devstack import TemporalDevServer
from workflowable.workflows.messages import workflow_id_for


class UiOrderPlaced(WorkflowEvent):
    order_id: int
    customer: str


class IssueReceipt(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("receipt", f"R-{ctx.tokens['order_id']}")


async def test_the_web_ui_shows_a_process_in_the_terms_of_the_business(settings, task_queue, tmp_path):
    server = TemporalDevServer()
    try:
        own = settings.model_copy(update={"temporal_address": await server.start()})
        UiOrderPlaced.task_queue = task_queue
        flow = WorkflowDefinition(unique("ui-order"), event=UiOrderPlaced)
        flow.start(flow.activity("issue_receipt", IssueReceipt))
        async with await Workflowable.connect(own) as client, serving(own, [IssueReceipt], task_queue=task_queue):
            await client.save_workflow(flow, activate=True)
            process, = await client.trigger_event(UiOrderPlaced(order_id=4711, customer="ada"))
            assert (await client.wait_for_process(process.id, timeout=60)).status.label == "Completed"
            history = await client.temporal.get_workflow_handle(workflow_id_for(process.id)).fetch_history()
            await client.deactivate_workflow(flow.name)
        url = f"{server.ui_url}/namespaces/{own.temporal_namespace}/workflows/{workflow_id_for(process.id)}"
        page = text_of(await asyncio.to_thread(render, url, tmp_path, "process.png", wait_ms=15_000, height=1600))
        if os.environ.get("WORKFLOWABLE_KEEP_SCREENSHOTS"):
            shutil.copy(tmp_path / "process.png", os.environ["WORKFLOWABLE_KEEP_SCREENSHOTS"])
    finally:
        server.stop()
    assert (tmp_path / "process.png").stat().st_size > 10_000
    compact = re.sub(r"\s+", " ", page)
    # The Input pane: the process, its workflow, its event and its tokens come first.
    input_pane = compact[compact.index("Input") :]
    lead = re.search(
        rf'"process_id": {process.id}, "plan": {{ "process_id": {process.id}, "workflow_name": "{flow.name}", '
        r'"event_name": "UiOrderPlaced", "tokens": { "order_id": "4711", "customer": "ada" }',
        input_pane,
    )
    assert lead, input_pane[:1500]
    graph = input_pane.find('"activities"')
    assert graph == -1 or graph > lead.end()  # the graph, if the pane shows that far, after them
    # The Result: the final status and every token, the activity's output among them.
    result = re.search(r'"status": "Completed", "tokens": { "order_id": "4711", "customer": "ada", "receipt": "R-4711" }', compact)
    assert result, compact[compact.index("Result") :][:800]
    # The attempt in the timeline, named by its summary; its result, only what it says.
    assert "issue_receipt: step 1, attempt 1 of 3" in compact
    results = [
        json.loads(event.activity_task_completed_event_attributes.result.payloads[0].data)
        for event in history.events
        if event.HasField("activity_task_completed_event_attributes")
    ]
    assert results == [{"outputs": {"receipt": "R-4711"}, "completed": True}]
