"""`build_worker`: the single list of what a worker registers, used by the CLI, demo and tests."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .activities import ProcessActivities
from .conditions import BUILT_IN as BUILT_IN_CONDITIONS
from .db.database import Database
from .db.mirror import DEFAULT_LOCK_LEASE, Mirror
from .db.partitions import keep_partitions_ahead
from .definitions import Catalog
from .metrics import WorkerMetrics
from .settings import DEFAULT_CHECKS_PER_RUN, DEFAULT_MAX_PROCESS_TOKENS_BYTES, DEFAULT_MAX_TOKEN_BYTES
from .workflows.locks import LockWorkflow
from .workflows.process import ProcessWorkflow
from .workflows.process_v1 import ProcessWorkflowV1
from .workflows.swaps import SwapWorkflow
from .workflows.sweep import ProcessRunsWorkflow

#: Heartbeats go out at most this often, so a cancel reaches a running activity within seconds.
HEARTBEAT_THROTTLE = timedelta(seconds=1)

#: Workflow code imports only states and its own modules, but importing any module of the
#: package runs its __init__; passing the package through keeps the sandbox from re-importing it.
SANDBOX = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("workflowable"))


def build_worker(
    client: Client,
    database: Database | AsyncEngine,
    catalog: Catalog,
    *,
    task_queue: str,
    lock_lease: timedelta = DEFAULT_LOCK_LEASE,
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
    max_process_tokens_bytes: int = DEFAULT_MAX_PROCESS_TOKENS_BYTES,
    checks_per_run: int = DEFAULT_CHECKS_PER_RUN,
    **options: Any,
) -> ProcessWorker:
    """A Temporal worker serving the process workflows, their lock keys, the sweep, swaps and every
    activity type in `catalog`. `lock_lease`: how long a process that stops renewing (its
    workflow terminated, no worker running it) can keep its lock key from the others;
    `max_token_bytes`: the largest output token an activity may write;
    `max_process_tokens_bytes`: the largest all of a process's tokens may grow to; `checks_per_run`: how
    often a waiting process re-checks its transitions before its run continues as new.

    Both process workflow types are registered: runs started before the current one replaced
    the first keep running on the code that began them. The built-in condition types
    (`TokenPresent`, `TokenEquals`) are registered beside `catalog`'s.

    `database`: a `Database` (its owner closes it), or an engine (`Workflowable.engine`), beside
    which the worker opens the hot statements' connections and closes them when it stops."""
    owns_database = isinstance(database, AsyncEngine)
    database = Database.around(database) if isinstance(database, AsyncEngine) else database
    catalog = catalog.including(BUILT_IN_CONDITIONS)
    mirror = Mirror(database, lock_lease=lock_lease, checks_per_run=checks_per_run)
    activities = ProcessActivities(
        mirror,
        catalog,
        max_token_bytes=max_token_bytes,
        max_process_tokens_bytes=max_process_tokens_bytes,
        metrics=WorkerMetrics.of(client),
    )
    options.setdefault("max_heartbeat_throttle_interval", HEARTBEAT_THROTTLE)
    options.setdefault("default_heartbeat_throttle_interval", HEARTBEAT_THROTTLE)
    return ProcessWorker(
        client,
        database=database,
        owns_database=owns_database,
        task_queue=task_queue,
        workflows=[ProcessWorkflow, ProcessWorkflowV1, LockWorkflow, ProcessRunsWorkflow, SwapWorkflow],
        activities=activities.all(),
        workflow_runner=SANDBOX,
        **options,
    )


#: The task that keeps the attempt log's partitions ahead, beside each worker, and the seconds a
#: worker that stops waits for a pass of it under way.
PARTITION_KEEPER, KEEPER_STOPS_WITHIN = "attempt-log partitions", 5.0


class ProcessWorker(Worker):
    """A Temporal worker whose activities write through `database`; one it opened for itself is
    closed once it has stopped (`run` ends so whether the worker runs directly or as `async with`)."""

    def __init__(self, *args: Any, database: Database, owns_database: bool, **options: Any) -> None:
        super().__init__(*args, **options)
        self.database = database
        self._owns_database = owns_database

    async def run(self) -> None:
        stop = asyncio.Event()
        keeper = asyncio.create_task(keep_partitions_ahead(self.database.engine, stop), name=PARTITION_KEEPER)
        try:
            await super().run()
        finally:
            stop.set()
            # A pass under way is a few short statements; one stuck on an unreachable Postgres
            # must not hold the stop up.
            await asyncio.wait({keeper}, timeout=KEEPER_STOPS_WITHIN)
            keeper.cancel()
            if self._owns_database:
                await self.database.close()
