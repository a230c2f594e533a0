"""Production concerns: `workflowable check`, and several worker processes sharing the work,
one of them killed mid-run."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
from datetime import UTC, datetime

from pydantic import SecretStr

from tests.conftest import database_of_its_own, eventually, unique
from tests.e2e.cli_app import WhoAmI, WhoAmIEvent
from tests.e2e.test_cli import ROOT, WORKFLOWABLE, environment
from tests.e2e.test_dispatch import run_cli
from workflowable import ProcessStatus, WorkflowDefinition
from workflowable.db.database import plain_url
from workflowable.ops.devstack import TemporalDevServer


async def test_check_passes_against_the_dev_stack(settings):
    code, output = await run_cli(settings, "check")
    assert code == 0, output
    for name in ("Temporal", "namespace", "search attributes", "Postgres", "schema", "attempt-log partitions"):
        assert name in output
    assert "FAILED" not in output


async def test_check_sees_the_months_ahead_missing_and_db_partitions_makes_them(settings, database_url):
    """A database whose attempt log ends this month (no worker could create the next): `check`
    fails naming the fix, `db partitions --ahead 3` makes the months and lists them, and `check`
    passes."""
    import psycopg

    with database_of_its_own(database_url, "ahead") as url:
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            later = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'workflow_process_activity_logs'::regclass AND c.relname > %s",
                (f"workflow_process_activity_logs_{datetime.now(UTC):%Y_%m}",),
            ).fetchall()
            assert len(later) == 3
            for (name,) in later:
                conn.execute(f"DROP TABLE {name}")
        own = settings.model_copy(update={"database_url": SecretStr(url)})
        code, output = await run_cli(own, "check")
        assert code == 1 and "attempt-log partitions" in output and "db partitions --ahead 3" in output, output
        code, output = await run_cli(own, "db", "partitions", "--ahead", "3")
        assert code == 0 and all(name in output for (name,) in later), output
        code, output = await run_cli(own, "check")
        assert code == 0, output
        code, output = await run_cli(own, "db", "partitions", "-o", "json")
        listed = json.loads(output)
        assert code == 0 and {p["name"] for p in listed} >= {name for (name,) in later}, output
        assert all(p["end"] == q["start"] for p, q in itertools.pairwise(listed)), "the months follow each other"


async def test_check_names_what_is_missing(settings):
    bare = TemporalDevServer(headless=True, search_attributes=False)
    address = await bare.start()
    try:
        code, output = await run_cli(settings.model_copy(update={"temporal_address": address}), "check")
    finally:
        bare.stop()
    assert code == 1, output
    flat = " ".join(output.split())
    for missing in ("WorkflowableProcessId (Int)", "WorkflowableStatus (Keyword)", "WorkflowableWorkflow (Keyword)", "WorkflowableEvent (Keyword)"):
        assert missing in flat, output
    code, output = await run_cli(settings.model_copy(update={"temporal_namespace": "no-such-namespace"}), "check")
    assert code == 1 and "no-such-namespace" in output, output


async def test_check_reports_an_unreachable_database(settings):
    from pydantic import SecretStr

    broken = settings.model_copy(update={"database_url": SecretStr("postgresql://nobody:secret-pw@127.0.0.1:1/none")})
    code, output = await run_cli(broken, "check")
    assert code == 1 and "cannot connect to" in output, output
    assert "secret-pw" not in output  # passwords are never printed


async def test_two_workers_share_the_work_and_one_can_die(client, settings, task_queue):
    WhoAmIEvent.task_queue = task_queue
    flow = WorkflowDefinition(unique("shared"), event=WhoAmIEvent)
    steps = [flow.activity(name, WhoAmI) for name in ("a", "b", "c")]
    flow.start(steps[0])
    flow.transition(steps[0], steps[1])
    flow.transition(steps[1], steps[2])
    await client.save_workflow(flow, activate=True)
    command = [*WORKFLOWABLE, "worker", "--app", "tests.e2e.cli_app:TYPES", "--queue", task_queue]
    workers = [
        subprocess.Popen(command, env=environment(settings), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        created = []
        for n in range(200):
            created += await client.trigger_event(WhoAmIEvent(n=n))
            if n == 100:
                # Both have been working: kill one without warning, mid-run.
                await eventually(lambda created=created: _both_worked(client, created, workers), timeout=60)
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait(timeout=10)
        done = await asyncio.gather(*(client.wait_for_process(p.id, timeout=180) for p in created))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(timeout=10)
        await client.deactivate_workflow(flow.name)
    assert [p.status for p in done] == [ProcessStatus.COMPLETED] * 200
    pids = {token.value for p in done for token in p.tokens if token.key.startswith("pid_")}
    assert pids == {str(w.pid) for w in workers}
    survivor = str(workers[1].pid)
    assert all(p.token_values["pid_c"] == survivor for p in done[150:])


async def _both_worked(client, created, workers) -> bool:
    """Both workers ran attempts of the processes so far. (Not only of the latest: a process's
    workflow stays on the worker that took its first task, and its activities run there too, so
    a worker that polled less while the last few were created can go a minute without one.)"""
    pids = set()
    for p in created:
        pids |= {t.value for t in (await client.get_process(p.id)).tokens if t.key.startswith("pid_")}
    return pids == {str(w.pid) for w in workers}
