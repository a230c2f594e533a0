"""Definitions in the database: registered types, saved workflows and their status (the
`Catalog` of types a worker runs is in definitions.py).

Saving a workflow replaces its whole graph in one transaction and is allowed only while it is a
Draft (or new); activating freezes it, so a running process's graph never changes under it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..definitions import ActivityType, ConditionType, WorkflowEvent
from ..errors import InvalidDefinition, InvalidWorkflowStatusChange, WorkflowNotEditable
from ..graph import WorkflowDefinition
from ..states import WorkflowStatus
from .models import (
    activities,
    activity_parameters,
    activity_types,
    condition_parameters,
    condition_types,
    conditions,
    events,
    listeners,
    priorities,
    transitions,
    workflows,
)
from .versions import count_live, find_workflow

#: Allowed workflow status moves (the original let Activate run even from Archived; we do not).
WORKFLOW_MOVES: dict[WorkflowStatus, frozenset[WorkflowStatus]] = {
    WorkflowStatus.DRAFT: frozenset({WorkflowStatus.ACTIVE}),
    WorkflowStatus.ACTIVE: frozenset({WorkflowStatus.DEACTIVATED}),
    WorkflowStatus.DEACTIVATED: frozenset({WorkflowStatus.ACTIVE, WorkflowStatus.ARCHIVED}),
    WorkflowStatus.ARCHIVED: frozenset(),
}


#: All of a workflow's parameters together: every process's workflow carries its graph, beside
#: its tokens, in one Temporal payload (see DEFAULT_MAX_PROCESS_TOKENS_BYTES).
MAX_PARAMETERS_BYTES = 512 * 1024


def _check_parameters_size(definition: WorkflowDefinition) -> None:
    models = [ref.parameters for ref in definition.activities.values()]
    models += [c.parameters for t in definition.transitions for c in t.conditions]
    size = sum(len(key.encode()) + len(value.encode()) for model in models for key, value in _encode_parameters(model).items())
    if size > MAX_PARAMETERS_BYTES:
        raise InvalidDefinition(
            f"workflow {definition.name!r}: its parameters come to {size:,} bytes, over the limit of {MAX_PARAMETERS_BYTES:,} "
            "(every process's workflow carries them); keep large data elsewhere and pass a reference"
        )


def _encode_parameters(parameters: BaseModel) -> dict[str, str]:
    return {key: json.dumps(value) for key, value in parameters.model_dump(mode="json").items()}


async def _upsert_type(conn: AsyncConnection, table: sa.Table, name: str, class_name: str) -> int:
    if table is events:  # event names are unique: they are how a workflow names its event
        taken_by = await conn.scalar(sa.select(events.c.class_name).where(events.c.name == name, events.c.class_name != class_name))
        if taken_by is not None:
            raise InvalidDefinition(f"event name {name!r} of {class_name} is taken by {taken_by}; rename one of the two classes")
    statement = pg_insert(table).values(name=name, class_name=class_name)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.class_name], set_={"name": statement.excluded.name, "updated_at": sa.func.now()}
    )
    return int((await conn.execute(statement.returning(table.c.id))).scalar_one())


async def register_types(conn: AsyncConnection, types: Iterable[type]) -> dict[type, int]:
    """Insert or refresh each type's row, keyed by its class path like the original's class_name."""
    ids: dict[type, int] = {}
    for kind in types:
        if issubclass(kind, WorkflowEvent):
            ids[kind] = await _upsert_type(conn, events, kind.event_name(), kind.class_path())
        elif issubclass(kind, ActivityType):
            ids[kind] = await _upsert_type(conn, activity_types, kind.type_name(), kind.class_path())
        elif issubclass(kind, ConditionType):
            ids[kind] = await _upsert_type(conn, condition_types, kind.type_name(), kind.class_path())
    return ids


async def _priority_id(conn: AsyncConnection, priority: int) -> int:
    statement = pg_insert(priorities).values(name=f"priority {priority}", priority=priority)
    statement = statement.on_conflict_do_update(index_elements=[priorities.c.priority], set_={"updated_at": sa.func.now()})
    return int((await conn.execute(statement.returning(priorities.c.id))).scalar_one())


async def save_workflow(engine: AsyncEngine, definition: WorkflowDefinition) -> int:
    """Create the workflow, or replace the graph of the Draft one of that name; returns its id."""
    definition.check()
    _check_parameters_size(definition)
    async with engine.begin() as conn:
        used: list[type] = [definition.event]
        used += [ref.activity_type for ref in definition.activities.values()]
        used += [c.condition_type for t in definition.transitions for c in t.conditions]
        used += [listener.event for listener in definition.listeners]
        type_ids = await register_types(conn, dict.fromkeys(used))
        existing = (
            await conn.execute(
                sa.select(workflows.c.id, workflows.c.workflow_status_id, workflows.c.workflow_event_id)
                .where(workflows.c.name == definition.name)
                .with_for_update()
            )
        ).one_or_none()
        values: dict[str, Any] = {
            "name": definition.name,
            "description": definition.description,
            "workflow_event_id": type_ids[definition.event],
            "workflow_priority_id": await _priority_id(conn, definition.priority),
            "retry_interval": max(1, round(definition.retry_interval_seconds)),
            "max_attempts": definition.max_attempts,
            "retry_backoff": definition.retry_backoff_seconds,
            "activity_timeout": definition.activity_timeout_seconds,
        }
        if existing is None:
            values["workflow_status_id"] = WorkflowStatus.DRAFT
            workflow_id = int((await conn.execute(workflows.insert().values(values).returning(workflows.c.id))).scalar_one())
        else:
            if existing.workflow_status_id != WorkflowStatus.DRAFT:
                status = WorkflowStatus(existing.workflow_status_id).label
                raise WorkflowNotEditable(f"workflow {definition.name!r} is {status}; only Draft workflows may be edited")
            if existing.workflow_event_id != values["workflow_event_id"]:
                raise WorkflowNotEditable(f"workflow {definition.name!r}: the event of an existing workflow cannot change")
            workflow_id = existing.id
            await conn.execute(workflows.update().where(workflows.c.id == workflow_id).values(**values, updated_at=sa.func.now()))
            # Cascades remove their transitions, conditions and parameters.
            await conn.execute(activities.delete().where(activities.c.workflow_id == workflow_id))
            await conn.execute(listeners.delete().where(listeners.c.workflow_id == workflow_id))
        await _insert_graph(conn, workflow_id, definition, type_ids)
    return workflow_id


async def _insert_graph(conn: AsyncConnection, workflow_id: int, definition: WorkflowDefinition, type_ids: dict[type, int]) -> None:
    activity_ids: dict[str, int] = {}
    for ref in definition.activities.values():
        activity_ids[ref.name] = int(
            (
                await conn.execute(
                    activities.insert()
                    .values(
                        workflow_id=workflow_id,
                        workflow_activity_type_id=type_ids[ref.activity_type],
                        name=ref.name,
                        description=ref.description,
                        max_attempts=ref.max_attempts,
                        timeout=ref.timeout_seconds,
                    )
                    .returning(activities.c.id)
                )
            ).scalar_one()
        )
        params = _encode_parameters(ref.parameters)
        if params:
            await conn.execute(
                activity_parameters.insert(),
                [{"workflow_activity_id": activity_ids[ref.name], "key": k, "value": v} for k, v in params.items()],
            )
    for transition in definition.transitions:
        transition_id = (
            await conn.execute(
                transitions.insert()
                .values(
                    workflow_id=workflow_id,
                    name=transition.name,
                    from_workflow_activity_id=activity_ids[transition.source.name] if transition.source else None,
                    to_workflow_activity_id=activity_ids[transition.target.name],
                    ordinal=transition.ordinal,
                    after_seconds=transition.after_seconds,
                )
                .returning(transitions.c.id)
            )
        ).scalar_one()
        for ordinal, condition in enumerate(transition.conditions, start=1):
            condition_id = (
                await conn.execute(
                    conditions.insert()
                    .values(workflow_transition_id=transition_id, workflow_condition_type_id=type_ids[condition.condition_type], ordinal=ordinal)
                    .returning(conditions.c.id)
                )
            ).scalar_one()
            params = _encode_parameters(condition.parameters)
            if params:
                await conn.execute(
                    condition_parameters.insert(),
                    [{"workflow_condition_id": condition_id, "key": k, "value": v} for k, v in params.items()],
                )


    if definition.listeners:
        await conn.execute(
            listeners.insert(),
            [
                {"workflow_id": workflow_id, "workflow_event_id": type_ids[listener.event], "match": json.dumps(listener.match)}
                for listener in definition.listeners
            ],
        )


async def set_workflow_status(engine: AsyncEngine, workflow: str | int, target: WorkflowStatus) -> None:
    """Move a workflow along WORKFLOW_MOVES; archiving needs every process of it to be finished."""
    async with engine.begin() as conn:
        row = await find_workflow(conn, workflow, lock=True)
        current = WorkflowStatus(row.workflow_status_id)
        if current is target:
            return
        if target not in WORKFLOW_MOVES[current]:
            raise InvalidWorkflowStatusChange(f"workflow {workflow!r} is {current.label} and cannot become {target.label}")
        if target is WorkflowStatus.ARCHIVED:
            live = await count_live(conn, row.id)
            if live:
                raise InvalidWorkflowStatusChange(f"workflow {workflow!r} still has {live} unfinished processes")
        await conn.execute(workflows.update().where(workflows.c.id == row.id).values(workflow_status_id=target, updated_at=sa.func.now()))

