"""Lock keys from the client's side: who holds one and who waits, asked of its lock workflow
(workflows/locks.py), which is the only place that knows."""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from .errors import InvalidArgument
from .workflows.locks import CURRENT_QUERY, LOCK_WORKFLOW, LockState, lock_workflow_id


async def get_lock(temporal: Client, key: str) -> LockState | None:
    """Who holds the lock key and who waits for it, in order; None if nobody does."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"a lock key is a non-empty str, got {key!r:.80}")
    handle = temporal.get_workflow_handle(lock_workflow_id(key))
    try:
        description = await handle.describe()
        if description.status is not WorkflowExecutionStatus.RUNNING:
            return None
        return await handle.query(CURRENT_QUERY, result_type=LockState)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


async def list_locks(temporal: Client) -> list[LockState]:
    """Every lock key that is held or waited for, by key."""
    query = f'WorkflowType = "{LOCK_WORKFLOW}" AND ExecutionStatus = "Running"'
    found = []
    async for execution in temporal.list_workflows(query):
        state = await temporal.get_workflow_handle(execution.id).query(CURRENT_QUERY, result_type=LockState)
        if state.holder or state.waiting:
            found.append(state)
    return sorted(found, key=lambda state: state.key)
