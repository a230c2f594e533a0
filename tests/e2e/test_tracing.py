"""Tracing on: one trace per process, from the trigger through every activity, with the
process id, workflow and activity on the activities' spans (an in-memory exporter reads them)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import unique
from tests.e2e.metrics_app import Chatty, LoggedEvent
from workflowable import Catalog, Workflowable, WorkflowDefinition, build_worker
from workflowable.connection import connect_temporal


async def test_a_process_is_one_trace_from_its_trigger_through_its_activities(client, settings):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the process's provider, once: no other test traces
    traced = settings.model_copy(update={"tracing": True, "task_queue": unique("traced")})
    LoggedEvent.task_queue = traced.task_queue
    flow = WorkflowDefinition(unique("traced"), event=LoggedEvent)
    first, second = flow.activity("first", Chatty), flow.activity("second", Chatty)
    flow.start(first)
    flow.transition(first, second)
    await client.save_workflow(flow, activate=True)
    tracing_client = Workflowable(traced, client.database, await connect_temporal(traced))
    try:
        async with build_worker(tracing_client.temporal, client.database, Catalog.of([LoggedEvent, Chatty]), task_queue=traced.task_queue):
            (process,) = await tracing_client.trigger_event(LoggedEvent(n=1))
            await tracing_client.wait_for_process(process.id, timeout=60)
    finally:
        await client.deactivate_workflow(flow.name)
        provider.force_flush()
        spans = exporter.get_finished_spans()
        provider.shutdown()  # later tests' spans (none: they do not trace) go nowhere
    (trigger,) = [s for s in spans if s.name == "workflowable.trigger_event"]
    assert trigger.attributes["workflowable.event"] == "LoggedEvent"
    assert list(trigger.attributes["workflowable.process_id"]) == [process.id]
    ours = [s for s in spans if s.context.trace_id == trigger.context.trace_id]
    names = [s.name for s in ours]
    assert "StartWorkflow:WorkflowProcessV2" in names and "RunWorkflow:WorkflowProcessV2" in names, names
    runs = [s for s in ours if s.name == "RunActivity:Chatty"]
    assert [s.attributes["workflowable.activity"] for s in sorted(runs, key=lambda s: s.start_time)] == ["first", "second"]
    assert all(s.attributes["workflowable.process_id"] == process.id and s.attributes["workflowable.workflow"] == flow.name for s in runs)
