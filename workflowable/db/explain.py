"""`explain`: why a process is where it is, in plain words.

Read from the mirror: the process (its attempts, tokens and deliveries), its workflow's graph
(transition names, conditions with their parameters, deadlines, the events it listens for) and
the record of every check of its transitions (`workflow_process_evaluations`). The path so far
is each step with the check that chose it; a process that waits is told by its last check: which
condition says no, which deadline comes when, which events would reach it and with what values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ..states import AttemptStatus, ProcessStatus
from .models import activities, condition_parameters, condition_types, conditions, evaluations, events, listeners, transitions
from .reporting import Process, get_process


@dataclass(frozen=True)
class Check:
    """One check of the transitions at a position (`checks` identical ones in a row, folded)."""

    position: str  #: the activity it checked after ("start" before the first)
    cause: str
    chosen: str | None  #: the transition taken; None: none passed
    findings: tuple[str, ...]  #: each transition checked, in order, in words
    checks: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class Explanation:
    """Why a process is where it is. `lines()` says it in words; the fields are there to read."""

    process: Process
    path: tuple[str, ...]  #: each step so far and why it was taken
    checks: tuple[Check, ...]  #: every check of its transitions, oldest first
    listens: tuple[str, ...]  #: the events that would reach it, with the values that match it
    deadlines: tuple[str, ...]  #: the deadlines of the transitions leaving its position

    @property
    def waiting(self) -> bool:
        return self.process.status is ProcessStatus.PENDING or self.process.paused_from is ProcessStatus.PENDING

    def lines(self) -> list[str]:
        p = self.process
        said = [f"Process {p.id} of workflow {p.workflow_name!r} is {p.status.label}" + (f", at activity {p.position_name!r}." if p.position_name else ", before its first activity.")]
        if p.error:
            said.append(f"Error: {p.error}")
        said.append("Path:" if self.path else "Path: no activity has succeeded yet.")
        said += [f"  {n}. {step}" for n, step in enumerate(self.path, start=1)]
        if self.waiting:
            last = self.checks[-1] if self.checks else None
            said.append("Waiting:" if last is None else f"Waiting: no transition passes (last checked {_when(last.last_at)}, on {last.cause}):")
            if last is not None:
                said += [f"  - {finding}" for finding in last.findings]
            said += [f"  - deadline: {deadline}" for deadline in self.deadlines]
            said += [f"  - listens for {listening}" for listening in self.listens]
            if p.status is ProcessStatus.PENDING:
                said.append(f"  Next check: {_when(p.next_run_at)} at the latest.")
            repeats = sum(check.checks for check in self.checks if check.chosen is None and check.position == (p.position_name or "start"))
            if repeats > 1:
                said.append(f"  Checked {repeats} times at this position.")
        return said


async def explain(engine: AsyncEngine, process_id: int) -> Explanation:
    process = await get_process(engine, process_id)
    async with engine.connect() as conn:
        graph = await _Graph.load(conn, process.workflow_id)
        rows = (
            await conn.execute(
                sa.select(evaluations).where(evaluations.c.workflow_process_id == process_id).order_by(evaluations.c.id)
            )
        ).all()
    checks = tuple(graph.check(row) for row in rows)
    tokens = process.token_values
    listens = tuple(
        f"{event} with " + ", ".join(f"{field}={tokens.get(key, '(no ' + key + ' token)')}" for field, key in match.items())
        for event, match in graph.listens
    )
    arrived = _arrived_at(process)
    deadlines = tuple(
        f"{graph.transition_name(t)} passes on its own at {_when(arrived + timedelta(seconds=t['after_seconds']))}"
        + (" (its conditions holding)" if graph.conditions.get(t["id"]) else "")
        for t in graph.leaving(process.position)
        if t["after_seconds"] is not None and arrived is not None
    )
    return Explanation(process, tuple(_path(process, graph, rows)), checks, listens, deadlines)


def _arrived_at(process: Process) -> datetime | None:
    done = [a.completed_at for a in process.attempts if a.status is AttemptStatus.SUCCESS and a.completed_at]
    return max(done) if done else process.first_run_at


def _path(process: Process, graph: _Graph, rows: Sequence[Any]) -> list[str]:
    """Each succeeded step, and the transition that led to it with the check that chose it."""
    chosen = [row for row in rows if row.workflow_transition_id is not None]
    steps = []
    position: int | None = None
    for attempt in (a for a in process.attempts if a.status is AttemptStatus.SUCCESS):
        into = [t for t in graph.leaving(position) if t["to"] == attempt.activity_id]
        check = next((row for row in chosen if row.workflow_activity_id == position and any(t["id"] == row.workflow_transition_id for t in into)), None)
        if check is not None:
            chosen.remove(check)
            transition = graph.by_id[check.workflow_transition_id]
            why = f"{graph.transition_name(transition)} passed on a check after {check.cause} ({_when(check.created_at)})"
        elif into and graph.always(into[0]):
            why = f"{graph.transition_name(into[0])} is always taken"
        else:
            why = "taken (no record of the check)"
        tries = f", after {attempt.attempt} attempts" if attempt.attempt > 1 else ""
        steps.append(f"{attempt.activity_name!r} succeeded {_when(attempt.completed_at)}{tries}: {why}.")
        position = attempt.activity_id
    return steps


class _Graph:
    """The workflow's graph as `explain` names it."""

    def __init__(self, names: dict[int, str], rows: list[Any], conds: dict[int, list[str]], listens: list[tuple[str, dict[str, str]]]) -> None:
        self.names = names
        self.by_id = {row.id: {"id": row.id, "name": row.name, "from": row.from_workflow_activity_id, "to": row.to_workflow_activity_id,
                               "ordinal": row.ordinal, "after_seconds": row.after_seconds} for row in rows}
        self.conditions = conds
        self.listens = listens

    @classmethod
    async def load(cls, conn: Any, workflow_id: int) -> _Graph:
        names = dict((await conn.execute(sa.select(activities.c.id, activities.c.name).where(activities.c.workflow_id == workflow_id))).all())
        rows = (await conn.execute(sa.select(transitions).where(transitions.c.workflow_id == workflow_id).order_by(transitions.c.ordinal))).all()
        cond_rows = (
            await conn.execute(
                sa.select(conditions.c.id, conditions.c.workflow_transition_id, condition_types.c.name)
                .join(condition_types, condition_types.c.id == conditions.c.workflow_condition_type_id)
                .where(conditions.c.workflow_transition_id.in_([r.id for r in rows]))
                .order_by(conditions.c.ordinal, conditions.c.id)
            )
        ).all()
        params = (
            await conn.execute(sa.select(condition_parameters).where(condition_parameters.c.workflow_condition_id.in_([c.id for c in cond_rows])))
        ).all()
        conds: dict[int, list[str]] = {}
        for c in cond_rows:
            given = ", ".join(f"{p.key}={json.loads(p.value)!r}" for p in params if p.workflow_condition_id == c.id)
            conds.setdefault(c.workflow_transition_id, []).append(f"{c.name}({given})")
        listen_rows = (
            await conn.execute(
                sa.select(events.c.name, listeners.c.match)
                .join(events, events.c.id == listeners.c.workflow_event_id)
                .where(listeners.c.workflow_id == workflow_id)
                .order_by(listeners.c.id)
            )
        ).all()
        return cls(names, list(rows), conds, [(r.name, json.loads(r.match)) for r in listen_rows])

    def leaving(self, position: int | None) -> list[dict[str, Any]]:
        return sorted((t for t in self.by_id.values() if t["from"] == position), key=lambda t: t["ordinal"])

    def always(self, transition: dict[str, Any]) -> bool:
        return not self.conditions.get(transition["id"]) and transition["after_seconds"] is None

    def transition_name(self, transition: dict[str, Any]) -> str:
        return f"transition {transition['name']!r} ({transition['ordinal']})"

    def check(self, row: Any) -> Check:
        findings = []
        for entry in json.loads(row.details):
            transition = self.by_id.get(entry["transition"])
            if transition is None:
                continue
            named = self.conditions.get(transition["id"], [])
            words = []
            if "after" in entry and "conditions" not in entry:
                words.append(f"its deadline ({_duration(entry['after'])} at this position) had not come")
            for n, result in enumerate(entry.get("conditions", [])):
                condition = named[n] if n < len(named) else result["type"]
                if "error" in result:
                    words.append(f"{condition} raised {result['error']}")
                else:
                    words.append(f"{condition} says {'yes' if result['passed'] else 'no'}")
            verdict = "passes" if entry["passed"] else "does not pass"
            findings.append(f"{self.transition_name(transition)} {verdict}" + (": " + "; ".join(words) if words else ""))
        chosen = self.by_id.get(row.workflow_transition_id) if row.workflow_transition_id else None
        return Check(
            position=self.names.get(row.workflow_activity_id, "start") if row.workflow_activity_id else "start",
            cause=row.cause,
            chosen=self.transition_name(chosen) if chosen else None,
            findings=tuple(findings),
            checks=row.checks,
            first_at=row.created_at,
            last_at=row.updated_at,
        )


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"
