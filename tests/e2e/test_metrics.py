"""A worker's Prometheus endpoint, scraped during a run: Workflowable's counts equal the mirror's,
and the Temporal SDK's own metrics are there beside them. And its log, as JSON lines."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa

from tests.conftest import eventually, unique
from tests.e2e.flows import Boom, Sleep
from tests.e2e.metrics_app import Chatty, LoggedEvent, MeteredEvent, MeteredFailure
from tests.e2e.test_cli import ROOT, WORKFLOWABLE, environment
from workflowable import WorkflowDefinition
from workflowable.ops.devstack import free_port, stop_child

LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def scrape(address: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Each metric's samples: (labels, value)."""
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for line in text.splitlines():
        found = LINE.match(line)
        if found and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"] or ""))
            samples[found["name"]].append((labels, float(found["value"])))
    return samples


def total(samples, name: str, **labels: str) -> float:
    return sum(value for found, value in samples.get(name, []) if all(found.get(k) == v for k, v in labels.items()))


async def test_the_worker_exports_counts_that_match_the_mirror(client, settings):
    queue, address = unique("metrics"), f"127.0.0.1:{free_port()}"
    MeteredEvent.task_queue = MeteredFailure.task_queue = queue
    fine = WorkflowDefinition(unique("metered"), event=MeteredEvent)
    first, second = fine.activity("first", Sleep), fine.activity("second", Sleep)
    fine.start(first)
    fine.transition(first, second)
    failing = WorkflowDefinition(unique("metered-fail"), event=MeteredFailure, max_attempts=2, retry_backoff=0.1)
    failing.start(failing.activity("boom", Boom))
    for flow in (fine, failing):
        await client.save_workflow(flow, activate=True)
    command = [*WORKFLOWABLE, "worker", "--app", "tests.e2e.metrics_app:TYPES", "--queue", queue]
    worker = subprocess.Popen(command, env=environment(settings, WORKFLOWABLE_METRICS_ADDRESS=address), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        async def serving() -> bool:
            try:
                return bool(await asyncio.to_thread(scrape, address))
            except OSError:
                return False

        await eventually(serving, timeout=60)
        made = []
        for n in range(5):
            made += await client.trigger_event(MeteredEvent(n=n))
        made += await client.trigger_event(MeteredFailure(n=1))
        for process in made:
            await client.wait_for_process(process.id, timeout=60)
        samples = await asyncio.to_thread(scrape, address)
    finally:
        stop_child(worker, timeout=30)
        output = worker.stdout.read() if worker.stdout else ""
        for flow in (fine, failing):
            await client.deactivate_workflow(flow.name)
    assert f"Prometheus metrics on http://{address}/metrics" in output, output
    async with client.engine.connect() as conn:
        ended = dict((await conn.execute(sa.text(
            "SELECT w.name, count(*) FROM workflow_processes p JOIN workflows w ON w.id = p.workflow_id "
            "WHERE w.name IN (:fine, :failing) AND p.workflow_process_status_id IN (6, 7) GROUP BY w.name"),
            {"fine": fine.name, "failing": failing.name})).all())
        attempts = dict((await conn.execute(sa.text(
            "SELECT s.name, count(*) FROM workflow_process_activity_logs l "
            "JOIN workflow_process_activity_log_statuses s ON s.id = l.workflow_process_activity_log_status_id "
            "WHERE l.workflow_process_id = ANY(:ids) GROUP BY s.name"), {"ids": [p.id for p in made]})).all())
    assert total(samples, "workflowable_processes_started_total", workflow=fine.name) == 5
    assert total(samples, "workflowable_processes_ended_total", workflow=fine.name, status="Completed") == ended[fine.name] == 5
    assert total(samples, "workflowable_processes_ended_total", workflow=failing.name, status="Failed") == ended[failing.name] == 1
    assert total(samples, "workflowable_attempts_total", activity_type="Sleep", outcome="success") == attempts["Success"] == 10
    assert total(samples, "workflowable_attempts_total", activity_type="Boom", outcome="failure") == attempts["Failure"] == 2
    assert total(samples, "workflowable_attempt_duration_seconds_count", activity_type="Sleep") == 10
    assert total(samples, "workflowable_mirror_write_seconds_count", write="succeed") == 10
    assert any(name.startswith("temporal_") for name in samples), "the SDK's own metrics are served beside them"


async def test_the_worker_logs_with_time_level_and_the_process_of_each_activity_line(client, settings):
    """JSON lines for a log shipper: every line from inside an activity names its process."""
    queue = unique("logs")
    LoggedEvent.task_queue = queue
    flow = WorkflowDefinition(unique("logged"), event=LoggedEvent)
    flow.start(flow.activity("chat", Chatty))
    await client.save_workflow(flow, activate=True)
    command = [*WORKFLOWABLE, "worker", "--app", "tests.e2e.metrics_app:TYPES", "--queue", queue]
    env = environment(settings, WORKFLOWABLE_LOG_FORMAT="json")
    began = datetime.now(UTC)
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        (process,) = await client.trigger_event(LoggedEvent(n=7))
        await client.wait_for_process(process.id, timeout=60)
    finally:
        stop_child(worker, timeout=30)
        logged = worker.stderr.read() if worker.stderr else ""
        await client.deactivate_workflow(flow.name)
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("Worker serving") and line["level"] == "INFO" for line in lines), logged
    (chat,) = [line for line in lines if line["logger"] == "tests.chatty"]
    assert chat["message"] == "chatting about order 7" and chat["level"] == "WARNING"
    assert chat["process_id"] == process.id and chat["doing"].startswith("Chatty step-1.1"), chat
    assert began <= datetime.fromisoformat(chat["time"]) <= datetime.now(UTC)
