"""The `process-runs` sweep as a workflow, so a Temporal Schedule can run it every minute."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from .messages import PROCESS_RUNS_WORKFLOW, Activities


@workflow.defn(name=PROCESS_RUNS_WORKFLOW)
class ProcessRunsWorkflow:
    """The `process-runs` sweep as a workflow, so a Temporal Schedule can run it every minute."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            Activities.PROCESS_RUNS,
            result_type=str,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
