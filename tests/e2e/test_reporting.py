"""Inspection and reporting: search attributes in Temporal, CLI views, the seed's queries
against the Python API, the HTML report in a real browser, and the read-only reporting role."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from tests.conftest import eventually, serving, unique
from tests.e2e.browser import render
from tests.e2e.flows import TYPES, Sleep
from tests.e2e.test_control import temporal_cli
from tests.e2e.test_dispatch import run_cli
from workflowable import (
    ActivityContext,
    ActivityType,
    AttemptStatus,
    Condition,
    ConditionContext,
    ConditionType,
    ProcessStatus,
    WorkflowDefinition,
    WorkflowEvent,
)
from workflowable.db.database import plain_url
from workflowable.db.reporting_sql import ATTEMPTS_OF_PROCESS, AVERAGE_DURATION, FAILED_ATTEMPTS, VIEWS

S = ProcessStatus


class ReportEvent(WorkflowEvent):
    n: int


class FailsOnOdd(ActivityType):
    """Fails every attempt of odd-numbered events; succeeds on even ones."""

    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(0.01 * (int(ctx.tokens["n"]) % 4))
        if int(ctx.tokens["n"]) % 2:
            raise RuntimeError("odd")


class Every(BaseModel):
    every: int


class NotMultiple(ConditionType[Every]):
    Parameters = Every

    async def check(self, ctx: ConditionContext[Every]) -> bool:
        return int(ctx.tokens["n"]) % ctx.parameters.every != 0


@pytest.fixture(scope="module")
async def mixed(client, settings):
    """60 processes of one workflow with mixed outcomes: Completed and Failed."""
    queue = unique("reporting")
    ReportEvent.task_queue = queue
    flow = WorkflowDefinition(unique("report"), event=ReportEvent, max_attempts=2, retry_backoff=0.05)
    first, risky, last = flow.activity("first", Sleep), flow.activity("risky", FailsOnOdd), flow.activity("last", Sleep)
    flow.start(first)
    flow.transition(first, risky, when=[Condition(NotMultiple, {"every": 3})])
    flow.transition(first, last)
    flow.transition(risky, last)
    await client.save_workflow(flow, activate=True)
    async with serving(settings, [*TYPES, FailsOnOdd, NotMultiple], task_queue=queue):
        created = [p for n in range(60) for p in await client.trigger_event(ReportEvent(n=n))]
        done = await asyncio.gather(*(client.wait_for_process(p.id, timeout=120) for p in created))
    yield flow, done
    await client.deactivate_workflow(flow.name)


async def test_the_seed_queries_agree_with_the_python_api(client, mixed):
    flow, processes = mixed
    assert {p.status for p in processes} == {S.COMPLETED, S.FAILED}
    ids = {p.id for p in processes}
    async with client.engine.connect() as conn:
        for process in processes[:10]:
            rows = (await conn.execute(sa.text(ATTEMPTS_OF_PROCESS), {"workflow_process_id": process.id})).all()
            assert len(rows) == len(process.attempts)
        failed = (await conn.execute(sa.text(FAILED_ATTEMPTS), {"failure_status_id": int(AttemptStatus.FAILURE)})).all()
        failures_by_api = sum(1 for p in processes for a in p.attempts if a.status is AttemptStatus.FAILURE)
        assert sum(1 for row in failed if row.workflow_process_id in ids) == failures_by_api > 0
        by_activity: dict[int, list[float]] = {}
        for p in processes:
            for a in p.attempts:
                by_activity.setdefault(a.activity_id, []).append((a.completed_at - a.started_at).total_seconds())
        for activity_id, durations in by_activity.items():
            average = await conn.scalar(sa.text(AVERAGE_DURATION), {"activity_id": activity_id})
            assert float(average) == pytest.approx(sum(durations) / len(durations), abs=1e-6)
        outcomes = (await conn.execute(sa.text(
            "SELECT activity_name, attempts, successes, failures FROM workflow_activity_outcomes WHERE workflow_name = :w"
        ), {"w": flow.name})).all()
    by_name = {row.activity_name: row for row in outcomes}
    risky = [a for p in processes for a in p.attempts if a.activity_name == "risky"]
    assert by_name["risky"].attempts == len(risky)
    assert by_name["risky"].failures == sum(a.status is AttemptStatus.FAILURE for a in risky)


async def test_a_report_over_a_window_counts_the_processes_that_ended_in_it(client, mixed):
    """Live processes are counted as they are now; ended ones only if they ended in the window."""
    _, processes = mixed
    ended_here = {status.label: sum(p.status is status for p in processes) for status in (S.COMPLETED, S.FAILED)}
    everything = await client.report()
    recent = await client.report(since=datetime.now(UTC) - timedelta(hours=1))
    ahead = await client.report(since=datetime.now(UTC) + timedelta(minutes=1))
    for label, count in ended_here.items():
        assert everything.status_counts[label] >= recent.status_counts[label] >= count > 0, (label, everything.status_counts, recent.status_counts)
    assert all(ahead.status_counts[s.label] == 0 for s in ProcessStatus if s.is_terminal), ahead.status_counts
    assert list(ahead.status_counts) == [s.label for s in ProcessStatus]


async def test_temporal_lists_processes_by_status_like_the_mirror(client, mixed, settings):
    flow, processes = mixed
    for status in (S.COMPLETED, S.FAILED):
        expected = sorted(p.id for p in processes if p.status is status)

        async def listed(status=status, expected=expected):
            query = f'WorkflowableStatus="{status.label}" AND WorkflowableWorkflow="{flow.name}"'
            result = await asyncio.to_thread(temporal_cli, settings, "workflow", "list", "--query", query, "-o", "json")
            assert result.returncode == 0, result.stderr
            found = sorted(int(row["execution"]["workflowId"].rsplit("-", 1)[1]) for row in json.loads(result.stdout or "[]"))
            return found if found == expected else None

        assert await eventually(listed, timeout=20) == expected




async def test_cli_views(client, mixed, settings):
    flow, processes = mixed
    failed = next(p for p in processes if p.status is S.FAILED)
    code, output = await run_cli(settings, "processes", "--status", "failed", "--workflow", flow.name, "--limit", "100")
    assert code == 0, output
    failures = sum(p.status is S.FAILED for p in processes)
    assert f"{failures} {'process' if failures == 1 else 'processes'}" in output and str(failed.id) in output
    code, output = await run_cli(settings, "process", "show", str(failed.id))
    assert code == 0 and "Failed" in output and "RuntimeError: odd" in output and "(input)" in output, output
    code, output = await run_cli(settings, "attempts", "--activity", "risky", "--status", "Failure", "--process", str(failed.id))
    assert code == 0 and "2 attempts" in output, output
    code, output = await run_cli(settings, "processes", "--status", "nonsense")
    assert code == 2 and "unknown status 'nonsense'" in output  # 2: bad input


async def a_stuck_process(client, settings) -> int:
    """A process Pending (its gate closed, re-checked every second) and so without progress
    for longer than the report's --stuck-after 2s, although its re-checks rewrite its row."""
    queue = unique("stuck")
    StuckEvent.task_queue = queue
    flow = WorkflowDefinition(unique("stuck"), event=StuckEvent, retry_interval=1)
    first, never = flow.activity("first", Sleep), flow.activity("never", Sleep)
    flow.start(first)
    flow.transition(first, never, when=[Condition(NotMultiple, {"every": 1})])
    await client.save_workflow(flow, activate=True)
    async with serving(settings, [*TYPES, NotMultiple], task_queue=queue):
        (process,) = await client.trigger_event(StuckEvent(n=1))

        async def pending_a_while() -> bool:
            found = await client.get_process(process.id)
            return found.status is S.PENDING and found.attempts[-1].started_at < found.next_run_at - timedelta(seconds=4)

        await eventually(pending_a_while, timeout=30)  # re-checked since, and no attempt started
    await client.deactivate_workflow(flow.name)
    return process.id


class StuckEvent(WorkflowEvent):
    n: int


async def status_counts(client) -> dict[str, int]:
    async with client.engine.connect() as conn:
        rows = (await conn.execute(sa.text(
            "SELECT s.name, count(p.id) FROM workflow_process_statuses s "
            "LEFT JOIN workflow_processes p ON p.workflow_process_status_id = s.id GROUP BY s.id, s.name"
        ))).all()
    return {name: count for name, count in rows}


async def test_the_html_report_shows_the_right_totals_in_a_browser(client, mixed, settings, tmp_path):
    flow, processes = mixed
    page = tmp_path / "report.html"
    stuck_id = await a_stuck_process(client, settings)
    before = await status_counts(client)
    # Over all history, so that every process is counted (a window counts only the processes
    # that ended in it, and earlier tests wrote some that ended long ago).
    code, output = await run_cli(settings, "report", "--since", "all", "--html", str(page), "--stuck-after", "2s")
    assert code == 0 and "Wrote" in output, output
    assert await status_counts(client) == before  # nothing moved while the report was made
    dom = await asyncio.to_thread(render, page.as_uri(), tmp_path, "report.png")
    assert 'data-rendered="yes"' in dom
    bars = dict(re.findall(r'data-chart="statuses" data-label="(\w+)" data-value="(\d+)"', dom))
    assert {k: int(v) for k, v in bars.items()} == before
    assert re.search(r'id="total-processes">(\d+)<', dom).group(1) == str(sum(before.values()))
    label = f"{flow.name} / risky"
    outcome = re.search(rf'data-chart="outcomes" data-label="{re.escape(label)}" data-value="(\d+)" data-successes="(\d+)" data-failures="(\d+)"', dom)
    risky = [a for p in processes for a in p.attempts if a.activity_name == "risky"]
    assert outcome and int(outcome.group(1)) == len(risky)
    assert int(outcome.group(3)) == sum(a.status is AttemptStatus.FAILURE for a in risky)
    assert f'data-chart="durations" data-label="{flow.name} / first"' in dom
    failed = [p.id for p in processes if p.status is S.FAILED]
    listed = set(map(int, re.findall(r'data-list="failed" data-process="(\d+)"', dom)))
    assert failed and set(failed) <= listed, (failed, listed)  # the newest 50, theirs among them
    ui = f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/workflow-process-{failed[0]}"
    assert f'href="{ui}"' in dom
    assert "odd" in dom  # the failed processes' error
    stuck = set(map(int, re.findall(r'data-list="stuck" data-process="(\d+)"', dom)))
    # The list holds the 50 longest stuck: other tests' processes left waiting may come first.
    assert (stuck_id in stuck or len(stuck) == 50) and not stuck & {p.id for p in processes}, stuck
    first_then_risky = re.search(r'data-from="first" data-to="risky" data-taken="(\d+)"', dom)
    assert first_then_risky and int(first_then_risky.group(1)) == sum(1 for p in processes if "risky" in [a.activity_name for a in p.attempts])
    assert re.search(r'data-node="risky" data-attempts="(\d+)"', dom).group(1) == str(len(risky))
    completed = sum(int(n) for n in re.findall(r'data-chart="hourly" data-label="[^"]+" data-completed="(\d+)"', dom))
    assert completed >= sum(p.status is S.COMPLETED for p in processes)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    if os.environ.get("WORKFLOWABLE_KEEP_REPORT"):
        shutil.copy(tmp_path / "report.png", os.environ["WORKFLOWABLE_KEEP_REPORT"])


async def test_the_reporting_role_reads_everything_and_writes_nothing(client, settings):
    role = unique("reporter").replace("-", "_")
    code, output = await run_cli(settings, "db", "grant-reporting", role, "--password", "s3cret")
    assert code == 0 and "created and granted" in output, output
    url = plain_url(settings.database_url.get_secret_value())
    as_role = re.sub(r"//[^@/]*@", f"//{role}:s3cret@", url)
    tables = [*VIEWS, "workflow_processes", "workflow_process_activity_logs", "workflow_process_tokens", "workflows"]
    with psycopg.connect(as_role, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == role
        for table in tables:
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        for statement in (
            "INSERT INTO workflow_statuses (id, name) VALUES (99, 'x')",
            "UPDATE workflow_processes SET workflow_process_status_id = 8",
            "DELETE FROM workflow_process_tokens",
            "CREATE TABLE intruder (id int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    code, output = await run_cli(settings, "db", "grant-reporting", role)
    assert code == 0 and "created" not in output, output
