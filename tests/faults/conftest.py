"""The fault suite's own servers: each test gets a Postgres, a Temporal dev server (on a database
file, so it can be restarted) and worker processes of its own, to stop, kill and restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowExecutionStatus

from tests.e2e.test_cli import ROOT, WORKFLOWABLE, environment
from workflowable import ProcessStatus, Settings, Workflowable
from workflowable.db.database import upgrade
from workflowable.ops.devstack import EmbeddedPostgres, TemporalDevServer, stop_child
from workflowable.workflows.messages import STATUS_ATTRIBUTE, workflow_id_for

APP = "tests.faults.app:TYPES"


class FaultStack:
    """Servers and workers one test owns; every one of them is stopped by `stop()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.postgres = EmbeddedPostgres(folder)
        self.temporal = TemporalDevServer(headless=True, db_file=folder / "temporal.db")
        self.workers: list[subprocess.Popen[bytes]] = []
        self.settings = Settings()

    async def start(self) -> None:
        url = self.postgres.start()
        upgrade(url)
        address = await self.temporal.start()
        self.settings = Settings(database_url=url, temporal_address=address, state_dir=self.folder)

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"worker-{len(self.workers)}.log", "wb")
        worker = subprocess.Popen(
            [*WORKFLOWABLE, "worker", "--app", APP], env=environment(self.settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        self.workers.append(worker)
        return worker

    def worker_log(self, index: int) -> str:
        return (self.folder / f"worker-{index}.log").read_text(errors="replace")

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

    def stop_postgres(self) -> None:
        self.postgres.stop()

    def start_postgres(self) -> None:
        url = self.postgres.start()
        assert self.settings.database_url is not None
        assert url == self.settings.database_url.get_secret_value(), "Postgres came back elsewhere"

    async def restart_temporal(self, *, down_for: float) -> None:
        """Stop the dev server, wait, start it again on the same port and database file."""
        self.temporal.stop()
        await asyncio.sleep(down_for)
        self.temporal = TemporalDevServer(
            port=self.temporal.port, ui_port=self.temporal.ui_port, headless=True, db_file=self.temporal.db_file
        )
        await self.temporal.start()

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                stop_child(worker, timeout=20)
        self.temporal.stop()
        self.postgres.stop()


@pytest.fixture
async def stack() -> AsyncIterator[FaultStack]:
    with tempfile.TemporaryDirectory(prefix="workflowable-faults-") as folder:
        stack = FaultStack(Path(folder))
        try:
            await stack.start()
            yield stack
        finally:
            stack.stop()


@pytest.fixture
async def client(stack: FaultStack) -> AsyncIterator[Workflowable]:
    async with await Workflowable.connect(stack.settings) as client:
        yield client


async def count_in(client: Workflowable, ids: list[int], *statuses: ProcessStatus) -> int:
    from workflowable.db.models import processes

    async with client.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(processes.c.id.in_(ids), processes.c.workflow_process_status_id.in_([int(s) for s in statuses]))
        return int(await conn.scalar(query) or 0)


async def wait_until_all(client: Workflowable, ids: list[int], status: ProcessStatus, *, timeout: float) -> None:
    """Poll the mirror (bounded by `timeout`) until every process in `ids` shows `status`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (done := await count_in(client, ids, status)) < len(ids):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{done} of {len(ids)} processes {status.label} after {timeout} s")
        await asyncio.sleep(0.5)


async def assert_exactly_once(client: Workflowable, ids: list[int], steps: int) -> None:
    """Each process: one Success row per activity, `steps` of them, no row left In Progress,
    one output token per step, and no two attempt rows for the same attempt."""
    async with client.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    """
                    SELECT p.id,
                           count(*) FILTER (WHERE l.workflow_process_activity_log_status_id = 2) AS successes,
                           count(DISTINCT l.workflow_activity_id) FILTER (WHERE l.workflow_process_activity_log_status_id = 2) AS activities,
                           count(*) FILTER (WHERE l.workflow_process_activity_log_status_id = 1) AS open,
                           (SELECT count(*) FROM workflow_process_tokens t
                             WHERE t.workflow_process_id = p.id AND t.workflow_activity_id IS NOT NULL) AS outputs,
                           count(*) - count(DISTINCT (l.temporal_run_id, l.step, l.attempt)) AS duplicates
                    FROM workflow_processes p LEFT JOIN workflow_process_activity_logs l ON l.workflow_process_id = p.id
                    WHERE p.id = ANY(:ids) GROUP BY p.id ORDER BY p.id
                    """
                ),
                {"ids": ids},
            )
        ).all()
    wrong = [tuple(row) for row in rows if tuple(row[1:]) != (steps, steps, 0, steps, 0)]
    assert len(rows) == len(ids) and not wrong, f"(process, successes, activities, open, outputs, duplicates): {wrong[:10]}"


async def assert_mirror_equals_temporal(client: Workflowable, ids: list[int]) -> None:
    """Describe (strongly consistent) each workflow: it ended as the mirror says, and its
    status search attribute agrees; reconcile finds nothing to repair."""
    expected = {ProcessStatus.COMPLETED: WorkflowExecutionStatus.COMPLETED, ProcessStatus.CANCELLED: WorkflowExecutionStatus.CANCELED}
    for process_id in ids:
        process = await client.get_process(process_id)
        description = await client.temporal.get_workflow_handle(workflow_id_for(process_id)).describe()
        assert description.status is expected[process.status], (process_id, process.status, description.status)
        assert description.typed_search_attributes.get(STATUS_ATTRIBUTE) == process.status.label
    assert not (await client.reconcile(dry_run=True)).differences
