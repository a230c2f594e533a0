"""Demo: an order-approval flow. Large orders need a manager's approval before payment.

    start -> reserve -> (amount > 1000) approve -> charge -> ship
                     -> (otherwise)              charge -> ship

`reserve` writes the output token `reservation_id`, which `charge` and `ship` read later.
Run it with `scripts/demo` (or `python -m examples.order_approval` inside the venv); serve it
with `workflowable dev --app examples.order_approval:TYPES`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time

import sqlalchemy as sa
from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from workflowable import (
    ActivityContext,
    ActivityType,
    Catalog,
    Condition,
    ConditionContext,
    ConditionType,
    ProcessStatus,
    Settings,
    Workflowable,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowNotEditable,
    build_worker,
    run,
)
from workflowable.db.reporting_sql import ATTEMPTS_OF_PROCESS, AVERAGE_DURATION, FAILED_ATTEMPTS
from workflowable.ops.devstack import DEV_UI_PORT, dev_stack
from workflowable.states import AttemptStatus


class OrderPlaced(WorkflowEvent):
    """A customer placed an order; its fields become the process's input tokens."""

    order_id: int
    amount: float = Field(gt=0)
    customer: str


class ReserveParameters(BaseModel):
    warehouse: str = "main"


class ReserveStock(ActivityType[ReserveParameters]):
    Parameters = ReserveParameters

    async def handle(self, ctx: ActivityContext[ReserveParameters]) -> None:
        await asyncio.sleep(0.05)
        ctx.set_output("reservation_id", f"{ctx.parameters.warehouse.upper()}-{ctx.tokens['order_id']}")


class RequestApproval(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(0.1)  # a manager looks at it
        ctx.set_output("approved_by", "manager@example.com")


class ChargePayment(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(0.05)
        ctx.set_output("payment_id", f"PAY-{ctx.tokens['reservation_id']}")


class ShipOrder(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(0.05)
        ctx.set_output("tracking_number", f"TRK-{ctx.tokens['reservation_id']}")


class AmountLimit(BaseModel):
    limit: float


class AmountAbove(ConditionType[AmountLimit]):
    Parameters = AmountLimit

    async def check(self, ctx: ConditionContext[AmountLimit]) -> bool:
        return float(ctx.tokens["amount"]) > ctx.parameters.limit


TYPES = [OrderPlaced, ReserveStock, RequestApproval, ChargePayment, ShipOrder, AmountAbove]


def order_approval() -> WorkflowDefinition:
    flow = WorkflowDefinition("order-approval", event=OrderPlaced, priority=10, retry_interval=30)
    reserve = flow.activity("reserve", ReserveStock, {"warehouse": "east"})
    approve = flow.activity("approve", RequestApproval)
    charge = flow.activity("charge", ChargePayment)
    ship = flow.activity("ship", ShipOrder)
    flow.start(reserve)
    flow.transition(reserve, approve, when=[Condition(AmountAbove, {"limit": 1000})])
    flow.transition(reserve, charge)
    flow.transition(approve, charge)
    flow.transition(charge, ship)
    return flow


async def run_demo(settings: Settings, orders: int, console: Console) -> bool:
    """Trigger `orders` events, show progress, then the processes and the seed's SQL queries."""
    async with await Workflowable.connect(settings) as client:
        try:
            await client.save_workflow(order_approval(), activate=True)
        except WorkflowNotEditable:
            pass  # saved and activated by an earlier run
        worker = build_worker(client.temporal, client.database, Catalog.of(TYPES), task_queue=settings.task_queue)
        async with worker:
            rng = random.Random(7)
            started = time.monotonic()
            created = []
            for n in range(orders):
                event = OrderPlaced(order_id=1000 + n, amount=round(rng.uniform(50, 2500), 2), customer=f"customer-{n % 5}")
                created += await client.trigger_event(event)
            ids = [p.id for p in created]
            with Progress(TextColumn("processes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("run", total=len(ids))
                for _ in range(600):  # at most 60 s
                    processes = [await client.get_process(i) for i in ids]
                    done = sum(p.status.is_terminal for p in processes)
                    bar.update(task, completed=done)
                    if done == len(ids):
                        break
                    await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started

        table = Table(title=f"{len(processes)} processes of 'order-approval' ({elapsed:.1f} s)")
        for column in ("id", "status", "amount", "path", "reservation_id", "tracking_number"):
            table.add_column(column)
        for p in processes:
            tokens = p.token_values
            path = " -> ".join(a.activity_name for a in p.attempts if a.status is AttemptStatus.SUCCESS)
            table.add_row(str(p.id), p.status.label, tokens["amount"], path, tokens.get("reservation_id", ""), tokens.get("tracking_number", ""))
        console.print(table)

        async with client.engine.connect() as conn:
            first = ids[0]
            rows = (await conn.execute(sa.text(ATTEMPTS_OF_PROCESS), {"workflow_process_id": first})).mappings().all()
            console.print(f"\n[bold]Seed query 1[/]: {ATTEMPTS_OF_PROCESS.replace(':workflow_process_id', str(first))};")
            query_table = Table("id", "workflow_activity_id", "status_id", "started_at", "completed_at")
            for row in rows:
                query_table.add_row(*(str(row[c]) for c in ("id", "workflow_activity_id", "workflow_process_activity_log_status_id", "started_at", "completed_at")))
            console.print(query_table)
            failed = (await conn.execute(sa.text(FAILED_ATTEMPTS), {"failure_status_id": int(AttemptStatus.FAILURE)})).all()
            console.print(f"[bold]Seed query 2[/]: {FAILED_ATTEMPTS.replace(':failure_status_id', str(int(AttemptStatus.FAILURE)))};")
            console.print(f"{len(failed)} failed attempts.")
            activity_id = rows[0]["workflow_activity_id"] if rows else None
            average = (await conn.execute(sa.text(AVERAGE_DURATION), {"activity_id": activity_id})).scalar()
            console.print(f"[bold]Seed query 3[/]: {AVERAGE_DURATION.replace(':activity_id', str(activity_id))};")
            console.print(f"avg_execution_time: {'-' if average is None else f'{float(average):.3f}'} s")
        return all(p.status is ProcessStatus.COMPLETED for p in processes)


async def main(orders: int = 20, *, keep: bool = False) -> int:
    console = Console() if sys.stdout.isatty() else Console(width=120)  # logs: wide enough for the table
    async with dev_stack(Settings(), log=console.print) as settings:
        ok = await run_demo(settings, orders, console)
        console.print("[green]Every demo process Completed.[/]" if ok else "[red]Some demo processes did not complete.[/]")
        if keep:
            await _until_interrupted(console, settings)
    return 0 if ok else 1


async def _until_interrupted(console: Console, settings: Settings) -> None:
    """Leave the stack up for a look around (web UI, psql, the CLI) until Ctrl-C or SIGTERM."""
    console.print("\nThe stack stays up. In another shell, with the same WORKFLOWABLE_* settings, `workflowable processes` lists the processes.")
    if Settings().temporal_address is None:
        console.print(f"Temporal's web UI: http://localhost:{DEV_UI_PORT}")
    if Settings().database_url is None:  # the embedded Postgres: no password, a Unix socket
        console.print(f'The mirror in psql: psql "{settings.database_url.get_secret_value() if settings.database_url else ""}"')
    console.print("Ctrl-C stops everything the demo started.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo", description="Run order-approval processes on a dev stack it brings up.")
    parser.add_argument("orders", nargs="?", type=int, default=20, help="how many orders to place (default 20)")
    parser.add_argument("--keep", action="store_true", help="leave the stack up afterwards, until Ctrl-C")
    return parser.parse_args(argv)


async def demo() -> None:
    options = arguments(sys.argv[1:])
    raise SystemExit(await main(options.orders, keep=options.keep))


if __name__ == "__main__":
    # Run this module as `examples.order_approval`, not as `__main__`: the catalog records types
    # by their import path, and a script that later triggers examples.order_approval.OrderPlaced
    # must find the workflows the demo saved.
    from examples.order_approval import demo as module_demo

    run(module_demo())
