"""`verify-integrity`: every activity and condition type in a workflow gets the input tokens it
declares it reads (`requires_tokens`) from the workflow's event.

The original checked each event against every type linked to it, with a comparison that looked
at the wrong keys; this checks each saved workflow (Archived ones aside) against the types it
really uses, and also names types a workflow uses that the application does not define.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ..definitions import Catalog, WorkflowEvent
from ..states import WorkflowStatus
from .models import activities, activity_types, condition_types, conditions, events, transitions, workflows


@dataclass(frozen=True)
class IntegrityProblem:
    workflow: str
    event: str
    kind: str  #: "activity type" or "condition type"
    type_name: str
    missing: tuple[str, ...] = ()  #: token keys the event does not provide; empty: the type is unknown

    def describe(self) -> str:
        if not self.missing:
            return f"workflow {self.workflow!r}: {self.kind} {self.type_name!r} is not defined by the application"
        keys = ", ".join(repr(k) for k in self.missing)
        return f"workflow {self.workflow!r}: {self.kind} {self.type_name!r} needs input token {keys}, which event {self.event} does not provide"


def missing_tokens(event: type[WorkflowEvent], types: Iterable[type]) -> dict[type, tuple[str, ...]]:
    """For each type that declares tokens the event does not give, those token keys."""
    provided = set(event.token_keys())
    found = {}
    for kind in types:
        missing = tuple(key for key in getattr(kind, "requires_tokens", ()) if key not in provided)
        if missing:
            found[kind] = missing
    return found


async def verify_integrity(engine: AsyncEngine, catalog: Catalog) -> tuple[int, list[IntegrityProblem]]:
    """(workflows checked, problems) for every saved workflow, not Archived, whose event the
    application defines (workflows of other applications' events are not this one's)."""
    async with engine.connect() as conn:
        live = workflows.c.workflow_status_id != WorkflowStatus.ARCHIVED
        named = (await conn.execute(
            sa.select(workflows.c.name, events.c.name.label("event"))
            .join(events, events.c.id == workflows.c.workflow_event_id).where(live).order_by(workflows.c.name)
        )).all()
        used_activities = (await conn.execute(
            sa.select(workflows.c.name, activity_types.c.name.label("type")).distinct()
            .join(activities, activities.c.workflow_id == workflows.c.id)
            .join(activity_types, activity_types.c.id == activities.c.workflow_activity_type_id).where(live)
        )).all()
        used_conditions = (await conn.execute(
            sa.select(workflows.c.name, condition_types.c.name.label("type")).distinct()
            .join(transitions, transitions.c.workflow_id == workflows.c.id)
            .join(conditions, conditions.c.workflow_transition_id == transitions.c.id)
            .join(condition_types, condition_types.c.id == conditions.c.workflow_condition_type_id).where(live)
        )).all()
    problems: list[IntegrityProblem] = []
    mine = [(workflow, catalog.events[event_name]) for workflow, event_name in named if event_name in catalog.events]
    for workflow, event in mine:
        event_name = event.event_name()
        for kind, rows, lookup in (
            ("activity type", used_activities, catalog.activities),
            ("condition type", used_conditions, catalog.conditions),
        ):
            for type_name in sorted(row.type for row in rows if row.name == workflow):
                found = lookup.get(type_name)
                if found is None:
                    problems.append(IntegrityProblem(workflow, event_name, kind, type_name))
                    continue
                for missing in missing_tokens(event, [found]).values():
                    problems.append(IntegrityProblem(workflow, event_name, kind, type_name, missing))
    return len(mine), problems
