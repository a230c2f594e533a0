"""The workflow-side code (workflowable/workflows/) is replayed, the process workflow outside Temporal's sandbox:
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


#: The process workflow runs outside Temporal's sandbox (process.py says why), so nothing at run
#: time stops its code from reading the clock, chance or the environment. What it loads may use
#: only these standard modules, and calls those only through `workflow` (`workflow.now()`).
UNSANDBOXED_STANDARD = {"__future__", "asyncio", "collections", "dataclasses", "datetime", "enum", "hashlib", "json", "types", "typing"}
NONDETERMINISTIC = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter", "random", "randint", "uuid4", "getenv", "urandom"}
#: Names whose clock, chance or environment a reference reaches (`default_factory=datetime.now`).
NONDETERMINISTIC_OWNERS = {"datetime", "date", "time", "random", "uuid", "os", "secrets"}


def siblings_of(path: Path) -> set[str]:
    """The modules of workflows/ that the file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {alias.name for alias in node.names} if node.module is None else {node.module.split(".")[0]}
    return found


def loaded_by(name: str) -> set[str]:
    """`name` and every module of workflows/ it loads, directly or not."""
    seen, todo = set(), [name]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += sorted(siblings_of(WORKFLOWS / f"{module}.py"))
    return seen


def nondeterministic_calls(path: Path) -> list[str]:
    """Calls of a clock, chance or the environment other than through `workflow`, and references
    to one (`default_factory=datetime.now`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in NONDETERMINISTIC and not (isinstance(func.value, ast.Name) and func.value.id == "workflow"):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(func)}()")
            elif isinstance(func, ast.Name) and func.id in NONDETERMINISTIC:
                found.append(f"{path.name}:{node.lineno}: {func.id}()")
        elif isinstance(node, ast.keyword) and isinstance(node.value, ast.Attribute | ast.Name):
            value = node.value
            owner = value.value.id if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) else None
            name = value.attr if isinstance(value, ast.Attribute) else value.id
            # a bare name is flagged only if no variable would be called so (`now=now` passes a time)
            if name in NONDETERMINISTIC and (owner in NONDETERMINISTIC_OWNERS or (isinstance(value, ast.Name) and name not in {"now", "today", "time", "random"})):
                found.append(f"{path.name}:{node.value.lineno}: {ast.unparse(value)}")
    return sorted(set(found), key=lambda f: int(f.split(":")[1]))


def test_the_unsandboxed_process_workflow_loads_only_deterministic_code():
    loaded = loaded_by("process")
    assert {"machine", "run_state", "effect_runner", "messages", "walk"} <= loaded, loaded
    # ..states, the one module outside workflows/ it may import (checked above), with them
    files = [WORKFLOWS / f"{name}.py" for name in sorted(loaded)] + [WORKFLOWS.parent / "states.py"]
    standard = {module.split(".")[0] for path in files for level, module in imports_of(path) if level == 0}
    assert standard - {"temporalio"} <= UNSANDBOXED_STANDARD, standard
    calls = [call for path in files for call in nondeterministic_calls(path)]
    assert not calls, calls


def test_the_determinism_check_catches_what_it_should(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time\nfrom datetime import datetime\nworkflow.now()\nworkflow.uuid4()\ndatetime.now()\ntime.monotonic()\nuuid4()\n"
        "at: datetime = field(default_factory=datetime.now)\nkey: str = field(default_factory=uuid4)\nmachine.now = workflow.now()\n"
    )
    assert nondeterministic_calls(sample) == [
        "sample.py:5: datetime.now()", "sample.py:6: time.monotonic()", "sample.py:7: uuid4()", "sample.py:8: datetime.now", "sample.py:9: uuid4",
    ]
