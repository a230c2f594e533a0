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
WORKFLOWABLE = [sys.executable, "-m", "workflowable"]


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
    assert "cannot load 'no.such.module:TYPES'" in result.stderr


BAD_COMMANDS = [
    (["process", "show", str(10**30)], f"no workflow process has id {10**30}"),
    (["process", "pause", str(2**63)], f"no workflow process has id {2**63}"),
    (["process", "cancel", "--", "-1"], "no workflow process has id -1"),
    (["process", "wake", "abc"], "Invalid value"),
    (["swap", "status", str(10**20)], f"no swap has id {10**20}"),
    (["workflow", "clone", "no-such-workflow", "copy"], "no workflow has name 'no-such-workflow'"),
    (["verify-integrity", "--app", "nope:TYPES"], "cannot load 'nope:TYPES'"),
    (["verify-integrity"], "--app wants 'module:attribute'"),
    (["report", "--html", "/nonexistent/folder/r.html"], "cannot use /nonexistent/folder/r.html"),
    (["processes", "--status", "Sleeping"], "unknown status 'Sleeping'"),
]


def test_bad_arguments_are_one_error_line_on_stderr_and_a_failing_status(settings):
    for args, message in BAD_COMMANDS:
        result = subprocess.run([*WORKFLOWABLE, *args], env=environment(settings), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr, (args, result.stderr)


def test_a_bad_setting_is_an_error_line_too(settings):
    env = environment(settings, WORKFLOWABLE_CHECKS_PER_RUN="many")
    result = subprocess.run([*WORKFLOWABLE, "processes"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "invalid settings" in result.stderr and "checks_per_run" in result.stderr
    assert "Traceback" not in result.stderr


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
