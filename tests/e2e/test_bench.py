"""A smoke run of the benchmark, so that it cannot rot. Its figures are printed, not asserted."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.test_cli import ROOT


def test_the_benchmark_runs_and_reports_every_figure():
    result = subprocess.run(
        [sys.executable, "-m", "workflowable", "bench", "--quick", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    print(json.dumps(figures["targets"], indent=1))
    assert set(figures["figures"]) == {
        "a_plain_temporal", "e_plain_temporal_eager", "f_eager_with_mirror_writes", "b_workflowable", "floor", "latency_started_per_second",
        "trigger_to_dispatched_ms", "cpu_ms_per_process", "cpu_ratio", "sweep", "growth", "report_queries", "waiting_worker", "deliveries"
    }
    # CPU per process of each part, from /proc: the bench's own Python, its dev server and its Postgres all did work.
    cpu = figures["figures"]["cpu_ms_per_process"]
    assert set(cpu) == set("aefb") and all(cpu[part]["python"] > 0 and cpu[part]["temporal"] > 0 for part in "aefb"), cpu
    assert cpu["b"]["postgres"] + cpu["f"]["postgres"] > 0, cpu  # read in ticks of 10 ms: one part alone may round to 0
    assert all(ratio is not None and ratio > 0 for ratio in figures["figures"]["cpu_ratio"].values()), figures["figures"]["cpu_ratio"]
    assert all(ratio > 0 for ratio in figures["figures"]["floor"].values()), figures["figures"]["floor"]
    for half in ("a_plain_temporal", "e_plain_temporal_eager", "f_eager_with_mirror_writes", "b_workflowable"):
        assert set(figures["figures"][half]) == {"per_second", "per_second_each_turn", "p50_ms", "p99_ms", "saturated_p50_ms", "saturated_p99_ms"}
    assert {"throughput b/a", "throughput b/e", "p50 latency b/a", "p50 latency b/e", "sweep / raw start rate"} <= set(figures["targets"])
    assert figures["figures"]["sweep"]["processes"] == 200
    assert figures["figures"]["waiting_worker"]["pending"] == 50
    deliveries = figures["figures"]["deliveries"]
    assert deliveries["delivered"] == deliveries["signalled"] == deliveries["completed"] == 50, deliveries
    report = figures["figures"]["report_queries"]
    queries = {k: v for k, v in report.items() if isinstance(v, dict) and "plan" in v}
    assert len(queries) == 3 and all(q["uses_index"] for q in queries.values())
    assert report["report, last 24 h"]["ms"] > 0 and report["report, all history"]["ms"] > 0
    assert figures["figures"]["report_queries"]["rows"] >= 20_000
    growth = figures["figures"]["growth"]
    assert growth["attempt_rows"] >= 20_000 and growth["processes"] >= 20_000 // 5
    assert set(growth["before"]) == set(growth["after"]) == {
        "reconcile: processes to compare", "reconcile: attempts left In Progress", "sweep: due count", "sweep: next batch", "report (last 24 h)"
    }
    assert all(ms > 0 for ms in [*growth["before"].values(), *growth["after"].values()])
