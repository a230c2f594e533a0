"""The `workflowable` command as a user runs it: a subprocess against the test servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.e2e.cli_app import CliEvent, Shout
from workflowable import ProcessStatus, Request, Settings, WorkflowDefinition
from workflowable.ops.checks import head_revision
from workflowable.settings import DEFAULT_TEMPORAL_ADDRESS

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
    assert f"Mirror schema at revision {head_revision()}" in result.stdout  # the revision itself, not "head"
    assert head_revision() == "0011"


def test_a_bad_app_is_a_clear_error(settings):
    result = subprocess.run([*WORKFLOWABLE, "worker", "--app", "no.such.module:TYPES"], env=environment(settings), cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2  # bad input
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


def run_cli(settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WORKFLOWABLE, *args], env=environment(settings), cwd=ROOT, capture_output=True, text=True, timeout=120, input=stdin)


async def test_trigger_and_read_back_in_every_output_format(client, settings):
    """A script's round trip: trigger from the command line (JSON inline, from a file, from
    stdin), then read the processes, one process and its attempts as JSON and CSV."""
    import csv
    import io

    name = unique("cli-trigger")
    flow = WorkflowDefinition(name, event=CliEvent)
    flow.start(flow.activity("shout", Shout))
    await client.save_workflow(flow, activate=True)
    try:
        made = run_cli(settings, "trigger", "CliEvent", "--app", "tests.e2e.cli_app:TYPES", "-d", '{"word": "hi"}', "--no-dispatch", "-o", "json")
        assert made.returncode == 0, made.stderr
        (created,) = [p for p in json.loads(made.stdout) if p["workflow_name"] == name]
        assert created["status"] == "Created" and isinstance(created["id"], int)
        from_stdin = run_cli(settings, "trigger", "CliEvent", "--app", "tests.e2e.cli_app:TYPES", "-d", "-", "--no-dispatch", "-o", "json", stdin='{"word": "yo"}')
        assert from_stdin.returncode == 0, from_stdin.stderr
        listed = json.loads(run_cli(settings, "processes", "--workflow", name, "-o", "json").stdout)
        assert {p["id"] for p in listed} >= {created["id"]} and all(p["status"] == "Created" for p in listed)
        table = list(csv.DictReader(io.StringIO(run_cli(settings, "processes", "--workflow", name, "-o", "csv").stdout)))
        assert {int(row["id"]) for row in table} == {p["id"] for p in listed} and table[0]["status"] == "Created"
        shown = json.loads(run_cli(settings, "process", "show", str(created["id"]), "-o", "json").stdout)
        assert shown["id"] == created["id"] and {t["key"]: t["value"] for t in shown["tokens"]} == {"word": "hi"}
        attempts = run_cli(settings, "attempts", "--process", str(created["id"]), "-o", "csv")
        assert attempts.returncode == 0 and attempts.stdout.strip() == ""  # none yet: not even a header without columns
    finally:
        await client.deactivate_workflow(name)
        for process in await client.list_processes(workflow=name):
            await client.cancel_process(process.id)


def test_exit_codes_tell_failures_apart(settings):
    cases = [
        (["process", "show", str(10**30)], 3, "no workflow process has id"),
        (["trigger", "CliEvent", "--app", "tests.e2e.cli_app:TYPES", "-d", "{not json"], 2, "--data is not JSON"),
        (["trigger", "Nope", "--app", "tests.e2e.cli_app:TYPES"], 2, "no event 'Nope' among the app's types; they are: CliEvent, WhoAmIEvent"),
        (["trigger", "CliEvent", "--app", "tests.e2e.cli_app:TYPES", "-d", '{"word": 7}'], 2, "invalid payload for event CliEvent: word"),
        (["trigger", "CliEvent", "--app", "tests.e2e.cli_app:TYPES", "-d", "[1]"], 2, "must be a JSON object"),
    ]
    for args, code, message in cases:
        result = run_cli(settings, *args)
        assert (result.returncode, message in result.stderr) == (code, True), (args, result.returncode, result.stderr)
    version = run_cli(settings, "--version")
    assert version.returncode == 0 and version.stdout.startswith("workflowable ")


async def test_bulk_requests_choose_by_filter_or_stdin_list_first_and_ask_before_many(client, settings):

    name = unique("cli-bulk")
    flow = WorkflowDefinition(name, event=CliEvent)
    flow.start(flow.activity("shout", Shout))
    await client.save_workflow(flow, activate=True)
    try:
        made = [(await client.trigger_event(CliEvent(word=f"w{n}"), dispatch=False)) for n in range(7)]
        ids = sorted(p.id for batch in made for p in batch if p.workflow_name == name)
        assert len(ids) == 7
        listed = run_cli(settings, "process", "cancel", "--workflow", name, "--dry-run")
        assert listed.returncode == 0 and "7 processes chosen, 7 in a status that allows cancel" in listed.stdout, listed.stdout
        assert all(p.status is ProcessStatus.CREATED for p in await client.list_processes(workflow=name))
        unconfirmed = run_cli(settings, "process", "cancel", "--workflow", name)  # stdin is not a terminal: no prompt
        assert unconfirmed.returncode == 2 and "confirm with --yes" in unconfirmed.stderr, unconfirmed.stderr
        # Listed by id: read in one query, in the order given; an id of no process is said and skipped.
        paused = run_cli(settings, "process", "pause", "--stdin", stdin="\n".join(str(i) for i in [ids[1], 2**62, ids[0], ids[1]]))
        assert paused.returncode == 0 and "pause: 2 done, 0 refused, 0 failed" in paused.stdout, (paused.stdout, paused.stderr)
        assert "skipped" in paused.stderr and str(2**62) in paused.stderr, paused.stderr
        assert [p.id for p in await client.list_processes(ids=[ids[0], 2**62, 2**70, ids[1]])] == [ids[1], ids[0]]  # newest first
        done = run_cli(settings, "process", "cancel", "--workflow", name, "--yes")
        assert done.returncode == 0 and "cancel: 7 done, 0 refused, 0 failed" in done.stdout, (done.stdout, done.stderr)
        again = run_cli(settings, "process", "cancel", "--workflow", name, "--yes")  # safe to run again
        assert again.returncode == 0 and "0 in a status that allows cancel" in again.stdout
        statuses = json.loads(run_cli(settings, "processes", "--workflow", name, "-o", "json").stdout)
        assert sorted(p["id"] for p in statuses) == ids and {p["status"] for p in statuses} == {"Cancelled"}
        result = await client.apply_to_processes(Request.RESUME, [*ids[:2], 2**62])
        assert result.done == [] and set(result.refused) == {*ids[:2], 2**62} and "is Cancelled" in result.refused[ids[0]]
    finally:
        await client.deactivate_workflow(name)


def test_read_commands_need_only_the_mirror_and_start_no_server(settings, state_dir, tmp_path):

    from workflowable.ops.devstack import free_port

    nowhere = {**environment(settings), "WORKFLOWABLE_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}  # no Temporal there
    for args in (["processes", "-o", "json"], ["attempts", "--limit", "1"], ["report", "-o", "json"]):
        result = subprocess.run([*WORKFLOWABLE, *args], env=nowhere, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (args, result.stderr)
    assert isinstance(json.loads(subprocess.run([*WORKFLOWABLE, "processes", "-o", "json"], env=nowhere, cwd=ROOT, capture_output=True, text=True, timeout=120).stdout), list)
    steer = subprocess.run([*WORKFLOWABLE, "process", "pause", "1"], env=nowhere, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert steer.returncode == 4 and "cannot connect to Temporal" in steer.stderr, steer.stderr  # a request needs Temporal

    # No database configured and no dev stack running: an error, and no Postgres started for it.
    unset = {key: value for key, value in environment(settings).items() if key != "WORKFLOWABLE_DATABASE_URL"}
    empty = subprocess.run([*WORKFLOWABLE, "processes"], env={**unset, "WORKFLOWABLE_STATE_DIR": str(tmp_path)}, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert empty.returncode == 1 and "no mirror to read" in empty.stderr, empty.stderr
    assert not (tmp_path / "postgres").exists()

    # The dev stack's Postgres (here the session's, in its state folder) is attached to and let go.
    handles = state_dir / "postgres" / ".handle_pids.json"
    if Settings().database_url is None:  # the session runs its own embedded Postgres (unless one is configured)
        reader = subprocess.Popen([*WORKFLOWABLE, "processes"], env={**unset, "WORKFLOWABLE_STATE_DIR": str(state_dir)}, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        assert reader.pid not in json.loads(handles.read_text() or "[]"), "the command left its handle on the server"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_dev_stack_stops_every_server_it_started(tmp_path, stop):
    from workflowable.ops.devstack import DEV_UI_PORT, port_is_free

    temporal_port = int(DEFAULT_TEMPORAL_ADDRESS.rsplit(":", 1)[1])
    if not (port_is_free(temporal_port) and port_is_free(DEV_UI_PORT)):
        pytest.skip(f"the dev stack's own ports ({temporal_port}, {DEV_UI_PORT}) are taken on this machine")
    log = tmp_path / "dev.log"
    status, left = _stop_while_serving(["dev"], tmp_path, stop, {"WORKFLOWABLE_STATE_DIR": str(tmp_path)}, log, ready="Worker serving")
    assert status == 0, log.read_text()  # either signal asks a serving stack to stop
    assert left == {}
    assert json.loads((tmp_path / "postgres" / ".handle_pids.json").read_text() or "[]") == []


def test_a_command_stopped_by_sigterm_stops_the_servers_it_started():
    """`timeout` or a container's stop sends SIGTERM: the benchmark's own servers are stopped as
    on Ctrl-C, and the command ends with the status a shell gives a process SIGTERM ended."""
    with tempfile.TemporaryDirectory(prefix="wf-") as folder:  # short: Postgres's socket path has a length limit
        log = Path(folder) / "bench.log"
        status, left = _stop_while_serving(["bench", "--quick"], Path(folder), signal.SIGTERM, {"TMPDIR": folder}, log)
    assert status == 128 + signal.SIGTERM
    assert left == {}


def _stop_while_serving(
    args: list[str], folder: Path, stop: int, settings: dict[str, str], log: Path, *, ready: str = ""
) -> tuple[int, dict[int, str]]:
    """Run a command that starts its own Postgres and Temporal (their data in `folder`), send it
    `stop` once both are up and its output says `ready`, and return its status and whichever of its servers are still
    running after it ended (those are then stopped here)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WORKFLOWABLE_")} | settings
    servers: dict[int, str] = {}
    with log.open("w") as out:
        command = subprocess.Popen([*WORKFLOWABLE, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(480):  # until both servers are up
            servers = _servers_of(command.pid, folder)
            if (len(servers) >= 2 and ready in log.read_text()) or command.poll() is not None:
                break
            time.sleep(0.25)
        assert len(servers) >= 2 and ready in log.read_text(), log.read_text()
        command.send_signal(stop)
        command.wait(timeout=60)
        for _ in range(20):  # a server's own children leave a moment after it
            left = _still_running(servers, folder)
            if not left:
                break
            time.sleep(0.5)
        return command.returncode, left
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(timeout=10)
        for pid in _still_running(servers, folder):
            os.kill(pid, signal.SIGTERM)


def _live_processes() -> dict[int, tuple[int, str]]:
    """Every process not yet a zombie: its id, its parent's and its command line."""
    listing = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 3) for line in listing.splitlines()]
    return {int(pid): (int(parent), args) for pid, parent, stat, args in rows if not stat.startswith("Z") and "ps -ww" not in args}


def _servers_of(command: int, folder: Path) -> dict[int, str]:
    """The processes `command` started or whose command line names `folder` (where the servers of
    the dev stack and of the benchmark keep their data)."""
    return {pid: args for pid, (parent, args) in _live_processes().items() if parent == command or str(folder) in args}


def _still_running(servers: dict[int, str], folder: Path) -> dict[int, str]:
    """The servers seen running that still are (followed by id: an orphan's parent is no longer
    the command), and anything else running from `folder`."""
    return {pid: args for pid, (_, args) in _live_processes().items() if pid in servers or str(folder) in args}
