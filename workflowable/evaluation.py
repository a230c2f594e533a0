"""Checking a position's transitions, and what the check found.

The transitions leaving the process's position are checked in ordinal order, each its deadline
first (has the process waited long enough?) and then its conditions (stopping at the first that
says no), up to the first transition that passes. What each said is kept, for the mirror's
record of the check (`workflow_process_evaluations`), which `explain` reads: a condition that
raised is recorded with its error, and the check stops there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .definitions import Catalog, ConditionContext
from .workflows.messages import TransitionStep


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass
class Evaluation:
    """The transition that passed (None: none), each transition looked at, in order, with what
    its deadline and conditions said; `error`: a condition raised, and the check stopped."""

    chosen: int | None
    checked: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None

    def details(self) -> str:
        """As the mirror keeps it: equal checks give equal text, so that repeats fold."""
        return json.dumps(self.checked, sort_keys=True, separators=(",", ":"))


async def evaluate(
    catalog: Catalog, process_id: int, transitions: list[TransitionStep], tokens: Mapping[str, str], *, waited_seconds: float = 0.0
) -> Evaluation:
    checked: list[dict[str, Any]] = []
    for transition in transitions:
        entry: dict[str, Any] = {"transition": transition.id, "passed": False}
        checked.append(entry)
        if transition.after_seconds is not None:
            entry["after"] = transition.after_seconds
            if waited_seconds < transition.after_seconds:
                continue  # its deadline has not come
        results: list[dict[str, Any]] = []
        entry["conditions"] = results
        passed = True
        for step in transition.conditions:
            result: dict[str, Any] = {"type": step.type_name}
            results.append(result)
            try:
                condition_type = catalog.condition(step.type_name)
                parameters = condition_type.validate_parameters(step.parameters)
                said = bool(await condition_type().check(ConditionContext(process_id=process_id, tokens=tokens, parameters=parameters)))
            except Exception as exc:
                result["error"] = describe_error(exc)
                return Evaluation(None, checked, exc)
            result["passed"] = said
            if not said:
                passed = False
                break
        entry["passed"] = passed
        if passed:
            return Evaluation(transition.id, checked)
    return Evaluation(None, checked)
