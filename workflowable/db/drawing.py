"""A saved workflow's graph as people read it: transitions named and numbered, conditions with
their parameters, deadlines, the events it listens for; drawn as text or as a Mermaid flowchart
(`workflowable workflow show NAME [--mermaid]`), and named in `explain`."""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..states import WorkflowStatus
from .models import (
    activities,
    activity_types,
    condition_parameters,
    condition_types,
    conditions,
    events,
    listeners,
    priorities,
    transitions,
)
from .versions import find_workflow


@dataclass(frozen=True)
class Step:
    """A transition as drawn: `source` None is the start."""

    id: int
    name: str
    ordinal: int
    source: int | None
    target: int
    conditions: tuple[str, ...]  #: each as `Type(key=value, ...)`
    after_seconds: float | None

    @property
    def always(self) -> bool:
        return not self.conditions and self.after_seconds is None

    @property
    def label(self) -> str:
        """What must hold for it to pass, in words: its conditions and its deadline."""
        parts = list(self.conditions)
        if self.after_seconds is not None:
            parts.append(f"after {duration(self.after_seconds)}")
        return " and ".join(parts) if parts else "always"


@dataclass(frozen=True)
class SavedGraph:
    name: str
    status: WorkflowStatus
    event: str
    priority: int
    retry_interval: float
    activities: dict[int, tuple[str, str]]  #: id -> (name, activity type)
    steps: tuple[Step, ...]  #: by (source, ordinal)
    listens: tuple[tuple[str, dict[str, str]], ...]  #: (event, {event field: token key})

    def activity_name(self, activity_id: int | None) -> str:
        return "start" if activity_id is None else self.activities.get(activity_id, ("?", ""))[0]

    def step(self, transition_id: int) -> Step | None:
        return next((s for s in self.steps if s.id == transition_id), None)

    def leaving(self, position: int | None) -> list[Step]:
        return [s for s in self.steps if s.source == position]

    def named(self, step: Step) -> str:
        return f"transition {step.name!r} ({step.ordinal})"

    def taken(self, path: list[int]) -> set[int]:
        """The transitions a process took along `path` (the activities it completed, in order)."""
        found, source = set(), None
        for target in path:
            step = next((s for s in self.leaving(source) if s.target == target), None)
            if step is not None:
                found.add(step.id)
            source = target
        return found

    def lines(self, *, taken: AbstractSet[int] = frozenset(), here: int | None = None) -> list[str]:
        """The graph in words; with `taken` (a process's transitions) marked ✓, and `here` its position."""
        said = [
            f"Workflow {self.name!r} ({self.status.label}), started by {self.event}, priority {self.priority}, "
            f"checks again every {duration(self.retry_interval)} while waiting"
        ]
        for event, match in self.listens:
            said.append(f"Listens for {event}: " + ", ".join(f"its {field} = token {key}" for field, key in match.items()))
        said.append("Activities: " + ", ".join(f"{name} ({kind})" for name, kind in self.activities.values()))
        said.append("Transitions, tried in order from each activity:")
        for step in self.steps:
            mark = "✓ " if step.id in taken else "  "
            said.append(f"{mark}{self.activity_name(step.source)} -> {self.activity_name(step.target)} ({step.ordinal}): {step.label}")
        if here is not None or taken:
            said.append(f"The process is at: {self.activity_name(here)}")
        ends = [name for activity_id, (name, _) in self.activities.items() if not self.leaving(activity_id)]
        said.append("Ends after: " + (", ".join(ends) or "-"))
        return said

    def mermaid(self, *, taken: AbstractSet[int] = frozenset(), here: int | None = None) -> str:
        """A Mermaid flowchart: activities as boxes, transitions labelled with their order and
        what must hold, the events it listens for as a note; with a process's `taken`
        transitions drawn thick and green and its position (`here`) highlighted."""
        node = {activity_id: f"a{activity_id}" for activity_id in self.activities}
        out = ["flowchart TD", "    start((start))"]
        for activity_id, (name, kind) in self.activities.items():
            out.append(f'    {node[activity_id]}["{_quoted(name)}<br/><small>{_quoted(kind)}</small>"]')
        for step in self.steps:
            source = "start" if step.source is None else node[step.source]
            label = f"{step.ordinal}" if step.always else f"{step.ordinal}: {_quoted(step.label)}"
            arrow = "-.->" if step.after_seconds is not None and not step.conditions else "-->"
            out.append(f'    {source} {arrow}|"{label}"| {node[step.target]}')
        for activity_id in self.activities:
            if not self.leaving(activity_id):
                out.append(f"    {node[activity_id]} --> done((end))")
        for n, step in enumerate(self.steps):  # links are numbered in the order they were drawn
            if step.id in taken:
                out.append(f"    linkStyle {n} stroke:#3ebd93,stroke-width:3px")
        if here is not None and here in node:
            out.append(f"    style {node[here]} fill:#fff3c4,stroke:#f7c948,stroke-width:3px")
        for n, (event, match) in enumerate(self.listens, start=1):
            values = ", ".join(f"{field} = {key}" for field, key in match.items())
            out.append(f'    listens{n}>"listens for {_quoted(event)} ({_quoted(values)})"]')
        return "\n".join(out)


async def load_graph(conn: AsyncConnection, workflow: str | int) -> SavedGraph:
    head = await find_workflow(conn, workflow)
    event = await conn.scalar(sa.select(events.c.name).where(events.c.id == head.workflow_event_id))
    priority = await conn.scalar(sa.select(priorities.c.priority).where(priorities.c.id == head.workflow_priority_id))
    names = {
        row.id: (row.name, row.type_name)
        for row in await conn.execute(
            sa.select(activities.c.id, activities.c.name, activity_types.c.name.label("type_name"))
            .join(activity_types, activity_types.c.id == activities.c.workflow_activity_type_id)
            .where(activities.c.workflow_id == head.id)
            .order_by(activities.c.id)
        )
    }
    rows = (
        await conn.execute(
            sa.select(transitions)
            .where(transitions.c.workflow_id == head.id)
            .order_by(transitions.c.from_workflow_activity_id.nulls_first(), transitions.c.ordinal)
        )
    ).all()
    words = await _conditions(conn, [row.id for row in rows])
    steps = tuple(
        Step(row.id, row.name, row.ordinal, row.from_workflow_activity_id, row.to_workflow_activity_id, tuple(words.get(row.id, [])), row.after_seconds)
        for row in rows
    )
    listening = await conn.execute(
        sa.select(events.c.name, listeners.c.match)
        .join(events, events.c.id == listeners.c.workflow_event_id)
        .where(listeners.c.workflow_id == head.id)
        .order_by(listeners.c.id)
    )
    return SavedGraph(
        name=head.name,
        status=WorkflowStatus(head.workflow_status_id),
        event=str(event),
        priority=int(priority or 0),
        retry_interval=float(head.retry_interval),
        activities=names,
        steps=steps,
        listens=tuple((row.name, json.loads(row.match)) for row in listening),
    )


async def _conditions(conn: AsyncConnection, transition_ids: list[int]) -> dict[int, list[str]]:
    rows = (
        await conn.execute(
            sa.select(conditions.c.id, conditions.c.workflow_transition_id, condition_types.c.name)
            .join(condition_types, condition_types.c.id == conditions.c.workflow_condition_type_id)
            .where(conditions.c.workflow_transition_id.in_(transition_ids))
            .order_by(conditions.c.ordinal, conditions.c.id)
        )
    ).all()
    params: list[Any] = list(
        (await conn.execute(sa.select(condition_parameters).where(condition_parameters.c.workflow_condition_id.in_([r.id for r in rows])))).all()
    )
    words: dict[int, list[str]] = {}
    for row in rows:
        given = ", ".join(f"{p.key}={json.loads(p.value)!r}" for p in params if p.workflow_condition_id == row.id)
        words.setdefault(row.workflow_transition_id, []).append(f"{row.name}({given})")
    return words


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    if seconds < 172800:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 86400:g} days"


def _quoted(text: str) -> str:
    """Text inside a Mermaid label: its quote marks as entities."""
    return text.replace('"', "#quot;")
