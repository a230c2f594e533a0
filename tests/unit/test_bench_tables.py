"""The benchmark's terminal tables show every kind of figure it reports (the JSON form is what
tests/e2e/test_bench.py runs)."""

from __future__ import annotations

from rich.console import Console

from workflowable.ops.bench import Results
from workflowable.ops.cli import bench_tables


def test_every_figure_and_target_has_a_row():
    results = Results(config={})
    results.figures["a_plain_temporal"] = {"per_second": 19.6, "per_second_each_turn": [19.1, 20.0]}
    results.figures["report_queries"] = {
        "rows": 20_000,
        "1 attempts of a process": {"ms": 0.05, "fetched_ms": 0.4, "rows": 1, "plan": "Index Scan", "uses_index": True},
        "report, last 24 h": {"ms": 88.5},
    }
    results.figures["growth"] = {
        "attempt_rows": 10_020_000, "processes": 2_000_400, "fill_s": 312.4,
        "before": {"sweep: due count": 0.04, "report (last 24 h)": 21.0},
        "after": {"sweep: due count": 0.06, "report (last 24 h)": 35.5},
    }
    results.figures["cpu_ms_per_process"] = {"e": {"python": 21.5, "temporal": 43.0, "postgres": 0.4, "total": 64.9}}
    results.target("throughput b/e", 0.81, 0.95, at_least=True)
    console = Console(record=True, width=240)
    for table in bench_tables(results):
        console.print(table)
    shown = console.export_text()
    for expected in ("a_plain_temporal", "per_second 19.6", "query 1 attempts of a process", "report, last 24 h", "88.5 ms", "throughput b/e", "≥ 0.95",
                     "10,020,000 attempt rows, 2,000,400 processes", "sweep: due count", "0.04 ms before, 0.06 ms after", "21.00 ms before, 35.50 ms after",
                     "CPU per process (e)", "python 21.5, temporal 43.0, postgres 0.4, total 64.9 ms"):
        assert expected in shown, expected
