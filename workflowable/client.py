"""`Workflowable`: the trigger side. Define and save workflows, trigger events, read processes."""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError

from . import catalog
from .database import create_engine, database_url
from .definitions import WorkflowEvent
from .errors import InvalidEventPayload
from .graph import WorkflowDefinition
from .messages import (
    EVENT_ATTRIBUTE,
    PROCESS_ID_ATTRIBUTE,
    PROCESS_WORKFLOW,
    STATUS_ATTRIBUTE,
    WORKFLOW_ATTRIBUTE,
    ProcessInput,
    workflow_id_for,
)
from .mirror import Mirror, NewProcess, insert_processes
from .reporting import Process, get_process, load_processes
from .settings import Settings
from .states import ProcessStatus, WorkflowStatus


class Workflowable:
    """An async client of the mirror and of Temporal. Use `await Workflowable.connect()`."""

    def __init__(self, settings: Settings, engine: AsyncEngine, temporal: Client) -> None:
        self.settings = settings
        self.engine = engine
        self.temporal = temporal
        self.mirror = Mirror(engine)

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> Workflowable:
        """Connect to the mirror and to Temporal as `settings` (default: the environment) say."""
        settings = settings or Settings()
        engine = create_engine(database_url(settings))
        temporal = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
        return cls(settings, engine, temporal)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Workflowable:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    # Definitions

    async def register(self, *types: type) -> None:
        """Record event, activity and condition types in their tables (saving a workflow does it too)."""
        async with self.engine.begin() as conn:
            await catalog.register_types(conn, types)

    async def save_workflow(self, definition: WorkflowDefinition, *, activate: bool = False) -> int:
        """Create the workflow, or replace the graph of the Draft of that name; returns its id."""
        workflow_id = await catalog.save_workflow(self.engine, definition)
        if activate:
            await self.activate_workflow(workflow_id)
        return workflow_id

    async def activate_workflow(self, workflow: str | int) -> None:
        await catalog.set_workflow_status(self.engine, workflow, WorkflowStatus.ACTIVE)

    async def deactivate_workflow(self, workflow: str | int) -> None:
        await catalog.set_workflow_status(self.engine, workflow, WorkflowStatus.DEACTIVATED)

    async def archive_workflow(self, workflow: str | int) -> None:
        await catalog.set_workflow_status(self.engine, workflow, WorkflowStatus.ARCHIVED)

    # Processes

    async def trigger_event(self, event: WorkflowEvent, *, dispatch: bool = True) -> list[Process]:
        """Create one Created process per Active workflow bound to the event, then dispatch each.

        The processes and their input tokens are written in one transaction; nothing is written
        if the event does not validate.
        """
        if not isinstance(event, WorkflowEvent):
            raise InvalidEventPayload(type(event).__name__, [{"loc": (), "msg": "not a WorkflowEvent instance"}])
        event_type = type(event)
        # Validate again: model_construct() or mutation could have bypassed the constructor.
        input_tokens = event_type(**event.model_dump(warnings=False)).to_tokens()
        queue = event_type.task_queue or self.settings.task_queue
        async with self.engine.begin() as conn:
            bound = await catalog.active_workflows_for(conn, event_type)
            ids = await insert_processes(conn, [NewProcess(w.id, queue) for w in bound], input_tokens)
        if dispatch and ids:
            event_name = event_type.event_name()
            await asyncio.gather(*(self._start(pid, queue, w.name, event_name) for pid, w in zip(ids, bound, strict=True)))
        async with self.engine.connect() as conn:
            return await load_processes(conn, ids)

    async def dispatch_process(self, process_id: int, queue: str | None = None) -> None:
        """Start the process's Temporal workflow (a no-op if it already has one)."""
        labels = await self.mirror.labels(process_id)
        await self._start(process_id, queue or labels.queue, labels.workflow_name, labels.event_name)

    async def _start(self, process_id: int, queue: str, workflow_name: str, event_name: str) -> None:
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(PROCESS_ID_ATTRIBUTE, process_id),
                SearchAttributePair(STATUS_ATTRIBUTE, ProcessStatus.DISPATCHED.label),
                SearchAttributePair(WORKFLOW_ATTRIBUTE, workflow_name),
                SearchAttributePair(EVENT_ATTRIBUTE, event_name),
            ]
        )
        try:
            handle = await self.temporal.start_workflow(
                PROCESS_WORKFLOW,
                ProcessInput(process_id),
                id=workflow_id_for(process_id),
                task_queue=queue,
                search_attributes=attributes,
                static_summary=f"{workflow_name}: process {process_id} ({event_name})",
            )
            run_id: str | None = handle.first_execution_run_id
        except WorkflowAlreadyStartedError:
            run_id = None  # the workflow id makes a second start a no-op
        await self.mirror.mark_dispatched(process_id, run_id)

    async def get_process(self, process_id: int) -> Process:
        """Status, position, timestamps, tokens and attempts of one process, from the mirror."""
        return await get_process(self.engine, process_id)

    async def wait_for_process(self, process_id: int, *, timeout: float = 60.0) -> Process:
        """Wait for the process's workflow to end (completed or failed) and return the mirror's view."""
        await self.get_process(process_id)  # an unknown id is a ProcessNotFound, not a Temporal error
        handle = self.temporal.get_workflow_handle(workflow_id_for(process_id))
        try:
            await asyncio.wait_for(handle.result(), timeout)
        except WorkflowFailureError:
            pass  # a Failed process is a result too; its error is in the mirror
        return await self.get_process(process_id)
