"""The `workflowable` command as a user runs it: a subprocess against the test servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import unique
from tests.e2e.cli_app import CliEvent, Shout
from workflowable import ProcessStatus, WorkflowDefinition

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWABLE = [sys.executable, "-m", "workflowable.cli"]


def environment(settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WORKFLOWABLE_DATABASE_URL=settings.database_url.get_secret_value(),
        WORKFLOWABLE_TEMPORAL_ADDRESS=settings.temporal_target,
        WORKFLOWABLE_TEMPORAL_NAMESPACE=settings.temporal_namespace,
        **extra,
    )
    if settings.payload_key is not None:
        env["WORKFLOWABLE_PAYLOAD_KEY"] = settings.payload_key.get_secret_value()
    return env


def test_db_upgrade_is_repeatable(settings):
    result = subprocess.run([*WORKFLOWABLE, "db", "upgrade"], env=environment(settings), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Mirror schema at revision head" in result.stdout


def test_a_bad_app_is_a_clear_error(settings):
    result = subprocess.run([*WORKFLOWABLE, "worker", "--app", "no.such.module:TYPES"], env=environment(settings), cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "cannot load 'no.such.module:TYPES'" in result.stdout


async def test_the_worker_command_runs_processes_and_stops_on_ctrl_c(client, settings, task_queue):
    CliEvent.task_queue = task_queue
    flow = WorkflowDefinition(unique("cli"), event=CliEvent)
    flow.start(flow.activity("shout", Shout))
    await client.save_workflow(flow, activate=True)
    worker = subprocess.Popen(
        [*WORKFLOWABLE, "worker", "--app", "tests.e2e.cli_app:TYPES", "--queue", task_queue],
        env=environment(settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        process, = await client.trigger_event(CliEvent(word="hello"))
        process = await client.wait_for_process(process.id, timeout=60)
        assert process.status is ProcessStatus.COMPLETED
        assert process.token_values["shouted"] == "HELLO"
        worker.send_signal(signal.SIGINT)
        output, _ = await asyncio.to_thread(worker.communicate, timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    assert worker.returncode == 0, output
    assert "Worker serving" in output and "Shout" in output and "Stopping" in output
