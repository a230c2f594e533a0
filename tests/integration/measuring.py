"""What the measure_* scripts share: a Postgres of their own, migrated, stopped afterwards; and a
statement's execution time inside Postgres."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from workflowable.db.database import create_engine, upgrade
from workflowable.db.partitions import ensure_partitions
from workflowable.ops.devstack import EmbeddedPostgres


def on_own_postgres(measure: Callable[[str], object], *, revision: str = "head") -> None:
    """`measure(url)` on an embedded Postgres of its own, at `revision` (the latest by default);
    stopped and deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="workflowable-measure-") as folder:
        postgres = EmbeddedPostgres(Path(folder), delete_on_stop=True)
        url = postgres.start()
        try:
            upgrade(url, revision)
            measure(url)
        finally:
            postgres.stop()


def partitions_since(url: str, since: datetime) -> None:
    """The attempt log's monthly partitions from `since` on, for rows loaded in the past."""

    async def make() -> None:
        engine = create_engine(url)
        try:
            await ensure_partitions(engine, since=since)
        finally:
            await engine.dispose()

    asyncio.run(make())


async def execution_ms(conn: Any, query: str, params: dict[str, Any] | None = None, *, runs: int = 3) -> float:
    """The median over `runs` of EXPLAIN ANALYZE's execution time, in milliseconds."""
    times = []
    for _ in range(runs):
        plan = (await conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}"), params or {})).scalar_one()
        times.append(plan[0]["Execution Time"])
    return statistics.median(times)
