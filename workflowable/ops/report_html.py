"""`workflowable report --html FILE`: one self-contained page (no network, no libraries) whose
script draws the charts from the figures embedded in it."""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from ..db.reporting import Report

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Workflowable report</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #1f2933; }
  h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
  .generated { color: #616e7c; margin-top: 0; }
  .totals { display: flex; gap: 1rem; margin: 1.5rem 0; }
  .total { flex: 1; background: #f5f7fa; border-radius: 8px; padding: 0.8rem 1rem; }
  .total b { display: block; font-size: 1.6rem; }
  section { margin: 2rem 0; }
  h2 { font-size: 1.15rem; border-bottom: 1px solid #e4e7eb; padding-bottom: 0.3rem; }
  svg text { font: 12px system-ui, sans-serif; fill: #1f2933; }
  .legend span { display: inline-block; margin-right: 1rem; }
  .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
  .empty { color: #616e7c; font-style: italic; }
</style>
</head>
<body>
<h1>Workflowable report</h1>
<p class="generated">Generated __GENERATED__ from the mirror.</p>
<div class="totals">
  <div class="total"><b id="total-processes"></b>processes</div>
  <div class="total"><b id="total-attempts"></b>activity attempts</div>
  <div class="total"><b id="total-failures"></b>failed attempts</div>
</div>
<section><h2>Processes per status</h2><div id="statuses"></div></section>
<section><h2>Outcomes per activity</h2>
  <p class="legend"><span><i style="background:#3ebd93"></i>Success</span><span><i style="background:#e66a6a"></i>Failure</span><span><i style="background:#9aa5b1"></i>In progress</span></p>
  <div id="outcomes"></div></section>
<section><h2>Attempt durations per activity (seconds)</h2>
  <p class="legend"><span><i style="background:#47a3f3"></i>p50</span><span><i style="background:#2186eb"></i>average</span><span><i style="background:#0b69a3"></i>p95</span></p>
  <div id="durations"></div></section>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const COLORS = {Created: "#9aa5b1", Pending: "#f7c948", Dispatched: "#47a3f3", Running: "#2186eb",
  Paused: "#a368fc", Failed: "#e66a6a", Completed: "#3ebd93", Cancelled: "#616e7c"};

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function chart(rows, height) {
  const svg = el("svg", {width: 960, height: rows * height + 10, role: "img"});
  return svg;
}
function seconds(v) { return v === null ? "-" : (v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s"); }

// Totals
const failures = data.activities.reduce((sum, a) => sum + a.failures, 0);
const attempts = data.activities.reduce((sum, a) => sum + a.attempts, 0);
const processes = Object.values(data.status_counts).reduce((a, b) => a + b, 0);
document.getElementById("total-processes").textContent = processes;
document.getElementById("total-attempts").textContent = attempts;
document.getElementById("total-failures").textContent = failures;

// Processes per status: one bar per status, all eight.
(function () {
  const entries = Object.entries(data.status_counts);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const svg = chart(entries.length, 28);
  entries.forEach(([status, n], i) => {
    const y = i * 28 + 5, w = Math.round(700 * n / max);
    const g = el("g", {class: "bar", "data-chart": "statuses", "data-label": status, "data-value": n});
    g.appendChild(el("text", {x: 0, y: y + 15}, status));
    g.appendChild(el("rect", {x: 110, y: y, width: Math.max(w, n ? 2 : 0), height: 20, rx: 3, fill: COLORS[status]}));
    g.appendChild(el("text", {x: 116 + w, y: y + 15, class: "value"}, n));
    svg.appendChild(g);
  });
  document.getElementById("statuses").appendChild(svg);
})();

// Outcomes per activity: stacked success / failure / in progress.
(function () {
  const target = document.getElementById("outcomes");
  if (!data.activities.length) { target.innerHTML = '<p class="empty">No attempts yet.</p>'; return; }
  const max = Math.max(1, ...data.activities.map(a => a.attempts));
  const svg = chart(data.activities.length, 30);
  data.activities.forEach((a, i) => {
    const y = i * 30 + 5, label = a.workflow_name + " / " + a.activity_name;
    const g = el("g", {class: "bar", "data-chart": "outcomes", "data-label": label, "data-value": a.attempts,
      "data-successes": a.successes, "data-failures": a.failures});
    g.appendChild(el("text", {x: 0, y: y + 15}, label.length > 34 ? label.slice(0, 33) + "…" : label));
    let x = 240;
    for (const [n, color] of [[a.successes, "#3ebd93"], [a.failures, "#e66a6a"], [a.in_progress, "#9aa5b1"]]) {
      const w = Math.round(560 * n / max);
      g.appendChild(el("rect", {x: x, y: y, width: w, height: 22, fill: color}));
      x += w;
    }
    g.appendChild(el("text", {x: x + 6, y: y + 15, class: "value"}, a.successes + " ok, " + a.failures + " failed"));
    svg.appendChild(g);
  });
  target.appendChild(svg);
})();

// Durations per activity: p50, average and p95 side by side.
(function () {
  const target = document.getElementById("durations");
  const rows = data.activities.filter(a => a.avg_seconds !== null);
  if (!rows.length) { target.innerHTML = '<p class="empty">No finished attempts yet.</p>'; return; }
  const max = Math.max(1e-6, ...rows.map(a => a.p95_seconds));
  const svg = chart(rows.length, 54);
  rows.forEach((a, i) => {
    const y = i * 54 + 5, label = a.workflow_name + " / " + a.activity_name;
    const g = el("g", {class: "bar", "data-chart": "durations", "data-label": label, "data-value": a.avg_seconds});
    g.appendChild(el("text", {x: 0, y: y + 27}, label.length > 34 ? label.slice(0, 33) + "…" : label));
    [["p50_seconds", "#47a3f3"], ["avg_seconds", "#2186eb"], ["p95_seconds", "#0b69a3"]].forEach(([key, color], k) => {
      const w = Math.round(520 * a[key] / max), yy = y + k * 15;
      g.appendChild(el("rect", {x: 240, y: yy, width: Math.max(w, 1), height: 13, fill: color}));
      g.appendChild(el("text", {x: 246 + w, y: yy + 11, class: "value"}, seconds(a[key])));
    });
    svg.appendChild(g);
  });
  target.appendChild(svg);
})();
document.body.setAttribute("data-rendered", "yes");
</script>
</body>
</html>
"""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__float__") and not isinstance(value, (int, float, bool)):
        return float(value)
    return value


def render_html(report: Report) -> str:
    """The page, with the report's figures embedded as JSON."""
    data = {
        "status_counts": report.status_counts,
        "activities": [{key: _plain(value) for key, value in row.items()} for row in report.activities],
    }
    embedded = json.dumps(data).replace("</", "<\\/")  # cannot close the script element
    generated = html.escape(report.generated_at.isoformat(timespec="seconds"))
    return PAGE.replace("__DATA__", embedded).replace("__GENERATED__", generated)
