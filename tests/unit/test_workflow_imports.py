"""The workflow-side code (workflowable/workflows/) runs in Temporal's sandbox and is replayed:
it imports only the standard library, temporalio, its own modules and the package's
sandbox-safe `states`. Anything else (the mirror, SQLAlchemy, psycopg, pydantic) fails here."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import workflowable.workflows

WORKFLOWS = Path(workflowable.workflows.__file__).parent
#: modules of the package outside workflows/ that workflow code may import
SANDBOX_SAFE = {"states"}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(level, module) of every import in the file: level 0 is absolute, 1 is `.x`, 2 is `..x`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def forbidden(level: int, module: str) -> bool:
    top = module.split(".")[0]
    if level == 0:
        return not (top in sys.stdlib_module_names or top == "temporalio")
    if level == 1:
        return False  # a sibling in workflows/
    return level != 2 or top not in SANDBOX_SAFE


def test_workflow_code_imports_only_sandbox_safe_modules():
    files = sorted(WORKFLOWS.glob("*.py"))
    assert {f.name for f in files} >= {"machine.py", "run_state.py", "effects.py", "walk.py", "status_track.py", "effect_runner.py", "process.py", "process_v1.py", "locks.py", "swaps.py", "sweep.py", "messages.py"}
    bad = [f"{f.name}: {'.' * level}{module}" for f in files for level, module in imports_of(f) if forbidden(level, module)]
    assert not bad, bad


def test_the_check_catches_what_it_should():
    assert forbidden(0, "sqlalchemy") and forbidden(0, "psycopg") and forbidden(2, "mirror") and forbidden(2, "")
    assert not forbidden(0, "asyncio") and not forbidden(0, "temporalio.workflow") and not forbidden(2, "states")


def test_the_state_machine_is_pure():
    """No Temporal, no I/O: the machine, its run's state, its effects, its walk and its status
    track are plain data and decisions."""
    pure = {"machine", "run_state", "effects", "walk", "status_track", "messages"}
    for name in sorted(f"{module}.py" for module in pure - {"messages"}):
        imports = imports_of(WORKFLOWS / name)
        assert all(not module.startswith("temporalio") for _, module in imports), (name, imports)
        assert {module.split(".")[0] for level, module in imports if level == 0} <= {"__future__", "collections", "dataclasses", "datetime", "enum"}, name
        assert {module for level, module in imports if level == 1} <= pure, name
