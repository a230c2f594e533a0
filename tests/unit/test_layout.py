"""The package's boundaries, read from the imports of its files: what Temporal replays
(workflows/), what touches Postgres (db/), what is tooling (ops/), and the runtime between them.

- db/ never imports ops/: the mirror works without the dev stack, the CLI or the benchmark.
- The runtime (the package's top-level modules) never imports ops/, but through three named
  doors: connection.database_url starts the dev stack's embedded Postgres when no URL is set;
  the public API re-exports `run` (ops/exiting.py) for scripts; `python -m workflowable` is the
  command.
- workflows/ never imports db/ (tests/unit/test_workflow_imports.py holds it to less still).
- No import cycle among modules at import time (imports inside functions run later and are
  not counted).
"""

from __future__ import annotations

import ast
from pathlib import Path

import workflowable

PACKAGE = Path(workflowable.__file__).parent
#: (importing file, imported module) pairs allowed across a boundary, each with its reason above
DOORS = {
    ("connection.py", "ops"),
    ("connection.py", "ops.devstack"),
    ("__init__.py", "ops"),
    ("__init__.py", "ops.exiting"),
    ("__main__.py", "ops"),
    ("__main__.py", "ops.cli"),
}


def module_name(path: Path) -> str:
    """`db.mirror` for db/mirror.py, `db` for db/__init__.py, "" for the package's own __init__."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: str | None = None, *, top_level_only: bool = False) -> set[str]:
    """Modules of the package that `path` (or `source`, as if it were that file) imports, as
    dotted names relative to the package."""
    tree = ast.parse(path.read_text() if source is None else source)
    nodes = _run_at_import(tree) if top_level_only else list(ast.walk(tree))
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    package = [part for part in package if part]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
                found |= {target, *(f"{target}.{alias.name}".lstrip(".") for alias in node.names)}
            elif node.module == "workflowable" or (node.module or "").startswith("workflowable."):
                module = node.module.removeprefix("workflowable").lstrip(".")
                found |= {module, *(f"{module}.{alias.name}".lstrip(".") for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("workflowable.") for alias in node.names if alias.name.startswith("workflowable.")}
    return {name for name in found if name and _is_module(name)}


def _run_at_import(tree: ast.Module) -> list[ast.AST]:
    """The nodes Python runs as it imports the module: all but function bodies and the
    `if TYPE_CHECKING:` blocks (a `try:` or a plain `if` at the top does run)."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def area(name: str) -> str:
    first = name.split(".")[0]
    return first if first in ("db", "ops", "workflows") else "runtime"


def crossings(changed: dict[Path, str] | None = None) -> list[str]:
    """Every import across a boundary; `changed`: files read as this text instead."""
    bad = []
    for path in files():
        source = area(module_name(path))
        for target in imports(path, (changed or {}).get(path)):
            into = area(target)
            forbidden = (source == "db" and into == "ops") or (source == "runtime" and into == "ops") or (source == "workflows" and into == "db")
            if forbidden and (str(path.relative_to(PACKAGE)), target) not in DOORS:
                bad.append(f"{path.relative_to(PACKAGE)} imports {target}")
    return bad


def test_no_import_crosses_a_boundary_that_should_not_exist():
    assert {area(module_name(p)) for p in files()} == {"runtime", "db", "ops", "workflows"}
    assert not crossings(), crossings()


def test_the_check_sees_a_forbidden_import():
    mirror, machine, client = PACKAGE / "db" / "mirror.py", PACKAGE / "workflows" / "machine.py", PACKAGE / "client.py"
    catalog = PACKAGE / "db" / "saved_definitions.py"
    changed = {
        mirror: mirror.read_text() + "\nfrom ..ops.cli import app\n",
        machine: machine.read_text() + "\nfrom ..db import models\n",
        client: client.read_text() + "\ndef later():\n    from .ops import bench\n",
        catalog: catalog.read_text() + "\nfrom workflowable import ops\n",
    }
    assert {
        "client.py imports ops.bench", "db/mirror.py imports ops.cli", "workflows/machine.py imports db.models", "db/saved_definitions.py imports ops",
    } <= set(crossings(changed))


def test_the_cycle_check_sees_imports_run_at_import_time_only():
    path = PACKAGE / "db" / "mirror.py"
    source = "try:\n    from ..ops import cli\nexcept ImportError:\n    pass\nif TYPE_CHECKING:\n    from .. import client\ndef f():\n    from .. import trigger\n"
    assert imports(path, source, top_level_only=True) == {"ops", "ops.cli"}


def test_no_import_cycle_at_import_time():
    graph = {module_name(p): imports(p, top_level_only=True) for p in files()}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in done:
                visit(target, [*trail, target])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert not cycles, cycles


def test_the_public_api_loads_on_first_use_and_names_each_home_once():
    """`workflowable/__init__.py` maps each public name to its module (_EXPORTS) and imports them
    all for type checkers only: the two agree, and every name resolves."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If))  # if TYPE_CHECKING:
    typed = {alias.name: node.module for node in guarded.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert typed == workflowable._EXPORTS
    assert sorted(workflowable.__all__) == sorted(workflowable._EXPORTS)
    for name in workflowable.__all__:
        assert getattr(workflowable, name) is not None


def test_importing_the_states_loads_neither_the_client_nor_the_drivers():
    import subprocess
    import sys

    code = "import sys, workflowable.states; print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'psycopg', 'cryptography') or m == 'workflowable.client'))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert loaded == "[]", loaded
