"""Demo: an order-approval flow. Large orders wait for a manager's decision before payment.

    start -> reserve -> (amount > 1000) ask_manager -> (decision approved) charge -> ship
                     |                              -> (decision other)    reject
                     |                              -> (after ESCALATE_AFTER) escalate -> (approved) charge -> ship
                     |                                                                 -> (other)    reject
                     -> (otherwise) charge -> ship

`reserve` writes the output token `reservation_id`, which `charge` and `ship` read later. The
manager's decision is an event, `ApprovalDecided`, delivered to the waiting process whose
`order_id` matches: it goes on at once, without polling. An order nobody decides on is escalated
when its deadline passes. Run it with `scripts/demo` (or `python -m examples.order_approval`
inside the venv); serve it with `workflowable dev --app examples.order_approval:TYPES`, and decide
by hand with `workflowable trigger ApprovalDecided --app examples.order_approval:TYPES -d
'{"order_id": 1003, "decision": "approved"}'`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time
from datetime import timedelta

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
    InvalidWorkflowStatusChange,
    ProcessStatus,
    Settings,
    TokenEquals,
    TokenPresent,
    Workflowable,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowNotEditable,
    WorkflowNotFound,
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


class ApprovalDecided(WorkflowEvent):
    """A manager decided on an order: delivered to the order's waiting process."""

    order_id: int
    decision: str  #: "approved", or anything else to reject


#: How long an order waits for its manager before it is escalated: a day in production, seconds
#: here so that the demo ends.
ESCALATE_AFTER = timedelta(seconds=3)


class ReserveParameters(BaseModel):
    warehouse: str = "main"


class ReserveStock(ActivityType[ReserveParameters]):
    Parameters = ReserveParameters

    async def handle(self, ctx: ActivityContext[ReserveParameters]) -> None:
        await asyncio.sleep(0.05)
        ctx.set_output("reservation_id", f"{ctx.parameters.warehouse.upper()}-{ctx.tokens['order_id']}")


class AskManager(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(0.05)  # a message to the manager's inbox
        ctx.set_output("asked", "manager@example.com")


class Escalate(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(0.05)  # the director is asked instead
        ctx.set_output("escalated_to", "director@example.com")


class RejectOrder(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        await asyncio.sleep(0.05)
        ctx.set_output("rejected", f"{ctx.tokens['reservation_id']} released")


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


TYPES = [OrderPlaced, ApprovalDecided, ReserveStock, AskManager, Escalate, RejectOrder, ChargePayment, ShipOrder, AmountAbove]

APPROVED = Condition(TokenEquals, {"key": "decision", "value": "approved"})
DECIDED = Condition(TokenPresent, {"key": "decision"})


#: The workflow's name. An Active workflow cannot be edited, so a changed graph is a new version
#: under a new name; `install` retires the versions before it.
FLOW = "order-approval-v2"
EARLIER_FLOWS = ("order-approval",)


def order_approval() -> WorkflowDefinition:
    # retry_interval: a waiting order is checked again hourly in any case; the decision and the
    # deadline are what move it on.
    flow = WorkflowDefinition(FLOW, event=OrderPlaced, priority=10, retry_interval=3600)
    reserve = flow.activity("reserve", ReserveStock, {"warehouse": "east"})
    ask = flow.activity("ask_manager", AskManager)
    escalate = flow.activity("escalate", Escalate)
    reject = flow.activity("reject", RejectOrder)
    charge = flow.activity("charge", ChargePayment)
    ship = flow.activity("ship", ShipOrder)
    flow.start(reserve)
    flow.transition(reserve, ask, when=[Condition(AmountAbove, {"limit": 1000})])
    flow.transition(reserve, charge)
    for waiting in (ask, escalate):
        flow.transition(waiting, charge, when=[APPROVED])
        flow.transition(waiting, reject, when=[DECIDED])
    flow.transition(ask, escalate, after=ESCALATE_AFTER)
    flow.transition(charge, ship)
    flow.listen(ApprovalDecided, match=["order_id"])
    return flow


async def run_demo(settings: Settings, orders: int, console: Console) -> bool:
    """Trigger `orders` events, show progress, then the processes and the seed's SQL queries."""
    async with await Workflowable.connect(settings) as client:
        await install(client)
        worker = build_worker(client.temporal, client.database, Catalog.of(TYPES), task_queue=settings.task_queue)
        async with worker:
            rng = random.Random(7)
            started = time.monotonic()
            order_of: dict[int, int] = {}  # process id -> order id
            large: list[int] = []  # processes that wait for a manager
            for n in range(orders):
                event = OrderPlaced(order_id=1000 + n, amount=round(rng.uniform(50, 2500), 2), customer=f"customer-{n % 5}")
                for process in await client.trigger_event(event):
                    order_of[process.id] = event.order_id
                    if event.amount > 1000:
                        large.append(process.id)
            ids = list(order_of)
            # The managers: the first large order is left alone until its deadline escalates it
            # (then the director approves it), the second is rejected, the others approved.
            deciding = asyncio.create_task(_managers(client, large, order_of, console))
            with Progress(TextColumn("processes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("run", total=len(ids))
                for _ in range(600):  # at most 60 s
                    processes = [await client.get_process(i) for i in ids]
                    done = sum(p.status.is_terminal for p in processes)
                    bar.update(task, completed=done)
                    if done == len(ids):
                        break
                    await asyncio.sleep(0.1)
            await _finished(deciding)
            elapsed = time.monotonic() - started

        table = Table(title=f"{len(processes)} processes of {FLOW!r} ({elapsed:.1f} s)")
        for column in ("id", "status", "amount", "path", "decision", "tracking_number"):
            table.add_column(column)
        for p in processes:
            tokens = p.token_values
            path = " -> ".join(a.activity_name for a in p.attempts if a.status is AttemptStatus.SUCCESS)
            table.add_row(str(p.id), p.status.label, tokens["amount"], path, tokens.get("decision", ""), tokens.get("tracking_number", ""))
        console.print(table)
        if large:
            console.print(f"\n[bold]workflowable process explain {large[0]}[/] (the order that waited past its deadline):")
            for line in (await client.explain_process(large[0])).lines():
                console.print(line, soft_wrap=True, highlight=False, markup=False)

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


async def install(client: Workflowable) -> None:
    """Save and activate the flow (once: a later run finds it Active), and deactivate earlier
    versions a state folder of an older demo may hold, so that an order starts one process."""
    try:
        await client.save_workflow(order_approval())
    except WorkflowNotEditable:
        pass  # saved by an earlier run
    await client.activate_workflow(FLOW)
    for earlier in EARLIER_FLOWS:
        try:
            await client.deactivate_workflow(earlier)
        except (WorkflowNotFound, InvalidWorkflowStatusChange):
            pass  # never saved here, or not Active


async def _managers(client: Workflowable, large: list[int], order_of: dict[int, int], console: Console) -> None:
    """Decide on each large order once it waits at `position` (a bounded wait: the run's 60 s)."""
    for n, process_id in enumerate(large[1:]):
        await _waiting_at(client, process_id, "ask_manager")
        decision = "rejected" if n == 0 else "approved"
        await client.trigger_event(ApprovalDecided(order_id=order_of[process_id], decision=decision))
    for process_id in large[:1]:
        await _waiting_at(client, process_id, "escalate")
        await client.trigger_event(ApprovalDecided(order_id=order_of[process_id], decision="approved"))


async def _waiting_at(client: Workflowable, process_id: int, position: str) -> None:
    for _ in range(600):
        process = await client.get_process(process_id)
        if process.status is ProcessStatus.PENDING and process.position_name == position:
            return
        await asyncio.sleep(0.1)


async def _finished(task: asyncio.Task[None]) -> None:
    """The managers' task, ended (it ends by itself once every process has moved on)."""
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


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
