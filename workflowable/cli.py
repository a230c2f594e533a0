"""The `workflowable` command: migrate the mirror, run a worker, bring up the dev stack."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from temporalio.client import Client

from .database import create_engine, database_url, upgrade
from .definitions import Catalog
from .devstack import dev_stack
from .errors import WorkflowableError
from .settings import Settings
from .worker import build_worker

app = typer.Typer(help="Event-triggered workflow processes on Temporal, mirrored to Postgres.", no_args_is_help=True)
db_app = typer.Typer(help="The mirror's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()

AppOption = Annotated[
    str | None,
    typer.Option("--app", help="'module:attribute' naming the list of types to serve (default: WORKFLOWABLE_APP)."),
]
QueueOption = Annotated[list[str] | None, typer.Option("--queue", "-q", help="Task queue to serve; repeat for several.")]


def load_types(spec: str | None) -> list[type]:
    """Import 'module:attribute' and return the list of types it names."""
    if not spec or ":" not in spec:
        raise WorkflowableError(f"--app wants 'module:attribute' naming a list of types, got {spec!r}")
    module_name, attribute = spec.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the app lives beside where it is run
    try:
        types = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise WorkflowableError(f"cannot load {spec!r}: {exc}") from None
    return list(types)


async def serve(settings: Settings, types: list[type], queues: list[str], *, ready: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run one worker per queue until SIGINT or SIGTERM, then shut them down cleanly."""
    catalog = Catalog.of(types)
    engine = create_engine(database_url(settings))
    temporal = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workers = [build_worker(temporal, engine, catalog, task_queue=queue) for queue in queues]
    try:
        for worker in workers:
            await worker.__aenter__()
        names = ", ".join(sorted(catalog.activities)) or "no activity types"
        console.print(f"[green]Worker[/] serving {', '.join(queues)} with {names}. Ctrl-C stops it.")
        if ready is not None:
            await ready()
        await stop.wait()
        console.print("Stopping: waiting for running activities to finish...")
    finally:
        for worker in reversed(workers):
            await worker.__aexit__(None, None, None)
        await engine.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _run(coroutine: Awaitable[Any]) -> Any:
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except WorkflowableError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the mirror's tables (Alembic)."""
    try:
        upgrade(database_url(Settings()), revision)
    except WorkflowableError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"Mirror schema at revision {revision}.")


@app.command()
def worker(app_spec: AppOption = None, queue: QueueOption = None) -> None:
    """Serve process workflows and the app's activity types until Ctrl-C."""
    settings = Settings()

    async def main() -> None:
        types = load_types(app_spec or settings.app)
        await serve(settings, types, queue or [settings.task_queue])

    _run(main())


@app.command()
def dev(app_spec: AppOption = None, queue: QueueOption = None) -> None:
    """Bring up the dev stack (Temporal dev server, Postgres, migrations, search attributes) and a worker."""
    settings = Settings()

    async def main() -> None:
        types = load_types(app_spec or settings.app) if (app_spec or settings.app) else []
        async with dev_stack(settings, log=console.print) as running:
            await serve(running, types, queue or [settings.task_queue])

    _run(main())


if __name__ == "__main__":
    app()
