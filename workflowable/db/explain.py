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
from .drawing import SavedGraph, duration, load_graph
from .models import evaluations
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
        graph = await load_graph(conn, process.workflow_id)
        rows = (
            await conn.execute(
                sa.select(evaluations).where(evaluations.c.workflow_process_id == process_id).order_by(evaluations.c.id)
            )
        ).all()
    checks = tuple(_check(graph, row) for row in rows)
    tokens = process.token_values
    listens = tuple(
        f"{event} with " + ", ".join(f"{field}={tokens.get(key, '(no ' + key + ' token)')}" for field, key in match.items())
        for event, match in graph.listens
    )
    arrived = _arrived_at(process)
    deadlines = tuple(
        f"{graph.named(step)} passes on its own at {_when(arrived + timedelta(seconds=step.after_seconds))}"
        + (" (its conditions holding)" if step.conditions else "")
        for step in graph.leaving(process.position)
        if step.after_seconds is not None and arrived is not None
    )
    return Explanation(process, tuple(_path(process, graph, rows)), checks, listens, deadlines)


def _arrived_at(process: Process) -> datetime | None:
    done = [a.completed_at for a in process.attempts if a.status is AttemptStatus.SUCCESS and a.completed_at]
    return max(done) if done else process.first_run_at


def _path(process: Process, graph: SavedGraph, rows: Sequence[Any]) -> list[str]:
    """Each succeeded step, and the transition that led to it with the check that chose it."""
    chosen = [row for row in rows if row.workflow_transition_id is not None]
    steps = []
    position: int | None = None
    for attempt in (a for a in process.attempts if a.status is AttemptStatus.SUCCESS):
        into = [step for step in graph.leaving(position) if step.target == attempt.activity_id]
        ids = {step.id for step in into}
        check = next((row for row in chosen if row.workflow_activity_id == position and row.workflow_transition_id in ids), None)
        taken = graph.step(check.workflow_transition_id) if check is not None else None
        if check is not None and taken is not None:
            chosen.remove(check)
            why = f"{graph.named(taken)} passed on a check after {check.cause} ({_when(check.created_at)})"
        elif into and into[0].always:
            why = f"{graph.named(into[0])} is always taken"
        else:
            why = "taken (no record of the check)"
        tries = f", after {attempt.attempt} attempts" if attempt.attempt > 1 else ""
        steps.append(f"{attempt.activity_name!r} succeeded {_when(attempt.completed_at)}{tries}: {why}.")
        position = attempt.activity_id
    return steps


def _check(graph: SavedGraph, row: Any) -> Check:
    """A record of a check, in words."""
    findings = []
    for entry in json.loads(row.details):
        step = graph.step(entry["transition"])
        if step is None:
            continue
        words = []
        if "after" in entry and "conditions" not in entry:
            words.append(f"its deadline ({duration(entry['after'])} at this position) had not come")
        for n, result in enumerate(entry.get("conditions", [])):
            condition = step.conditions[n] if n < len(step.conditions) else result["type"]
            if "error" in result:
                words.append(f"{condition} raised {result['error']}")
            else:
                words.append(f"{condition} says {'yes' if result['passed'] else 'no'}")
        verdict = "passes" if entry["passed"] else "does not pass"
        findings.append(f"{graph.named(step)} {verdict}" + (": " + "; ".join(words) if words else ""))
    chosen = graph.step(row.workflow_transition_id) if row.workflow_transition_id else None
    return Check(
        position=graph.activity_name(row.workflow_activity_id),
        cause=row.cause,
        chosen=graph.named(chosen) if chosen else None,
        findings=tuple(findings),
        checks=row.checks,
        first_at=row.created_at,
        last_at=row.updated_at,
    )


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"
