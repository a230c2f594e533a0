"""`workflowable report --html FILE`: one self-contained page (no network, no libraries) whose
script draws the charts and lists from the figures embedded in it: processes per status,
processes ended per hour, outcomes and durations per activity (durations on a log scale, so that
a minute-long activity and a millisecond one are both readable), and the failed and stuck
processes, each linked to its page in the Temporal web UI."""

from __future__ import annotations

import html
import json
from datetime import datetime, timedelta
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
  table.list { border-collapse: collapse; width: 100%; }
  table.list th, table.list td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e4e7eb; vertical-align: top; }
  table.list td.error { font-family: ui-monospace, monospace; font-size: 12px; color: #8a2a2a; }
  svg .axis { fill: #9aa5b1; }
</style>
</head>
<body>
<h1>Workflowable report</h1>
<p class="generated">Generated __GENERATED__ from the mirror; __WINDOW__.</p>
<div class="totals">
  <div class="total"><b id="total-processes"></b>processes</div>
  <div class="total"><b id="total-attempts"></b>activity attempts</div>
  <div class="total"><b id="total-failures"></b>failed attempts</div>
</div>
<section><h2>Processes per status (live ones now; ended ones in the window)</h2><div id="statuses"></div></section>
<section><h2>Processes ended per hour</h2>
  <p class="legend"><span><i style="background:#3ebd93"></i>Completed</span><span><i style="background:#e66a6a"></i>Failed</span></p>
  <div id="hourly"></div></section>
<section><h2>Outcomes per activity</h2>
  <p class="legend"><span><i style="background:#3ebd93"></i>Success</span><span><i style="background:#e66a6a"></i>Failure</span><span><i style="background:#9aa5b1"></i>In progress</span></p>
  <div id="outcomes"></div></section>
<section><h2>Attempt durations per activity (log scale)</h2>
  <p class="legend"><span><i style="background:#47a3f3"></i>p50</span><span><i style="background:#2186eb"></i>average</span><span><i style="background:#0b69a3"></i>p95</span></p>
  <div id="durations"></div></section>
<section><h2>Workflows: each activity's attempts and durations, each transition how often taken</h2><div id="graphs"></div></section>
<section><h2>Failed processes</h2><div id="failed"></div></section>
<section><h2>Stuck processes: live, no progress for __STUCK__</h2><div id="stuck"></div></section>
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
function seconds(v) {
  if (v === null) return "-";
  if (v < 0.01) return +(v * 1000).toFixed(2) + " ms";  // sub-millisecond figures stay readable
  return v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s";
}

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

// Processes ended per hour: Completed and Failed stacked, one column per hour.
(function () {
  const target = document.getElementById("hourly");
  if (!data.hourly.length) { target.innerHTML = '<p class="empty">No process ended in the window.</p>'; return; }
  const max = Math.max(1, ...data.hourly.map(h => h.completed + h.failed));
  const width = Math.max(8, Math.min(40, Math.floor(900 / data.hourly.length)));
  const svg = el("svg", {width: 960, height: 170, role: "img"});
  data.hourly.forEach((h, i) => {
    const x = 40 + i * width, ok = Math.round(120 * h.completed / max), bad = Math.round(120 * h.failed / max);
    const g = el("g", {class: "bar", "data-chart": "hourly", "data-label": h.hour, "data-completed": h.completed, "data-failed": h.failed});
    g.appendChild(el("rect", {x: x, y: 130 - ok, width: width - 2, height: ok, fill: "#3ebd93"}));
    g.appendChild(el("rect", {x: x, y: 130 - ok - bad, width: width - 2, height: bad, fill: "#e66a6a"}));
    g.appendChild(el("title", {}, h.hour + ": " + h.completed + " completed, " + h.failed + " failed"));
    svg.appendChild(g);
  });
  svg.appendChild(el("text", {x: 40, y: 150, class: "axis"}, data.hourly[0].hour.slice(0, 16).replace("T", " ")));
  svg.appendChild(el("text", {x: 0, y: 12, class: "axis"}, max));
  target.appendChild(svg);
})();

// Durations per activity: p50, average and p95 side by side, on a log scale with a tick per decade.
(function () {
  const target = document.getElementById("durations");
  const rows = data.activities.filter(a => a.avg_seconds !== null);
  if (!rows.length) { target.innerHTML = '<p class="empty">No finished attempts yet.</p>'; return; }
  const values = rows.flatMap(a => [a.p50_seconds, a.avg_seconds, a.p95_seconds]).filter(v => v > 0);
  const low = Math.floor(Math.log10(Math.max(1e-4, Math.min(...values)))), high = Math.ceil(Math.log10(Math.max(...values)));
  const span = Math.max(1, high - low);
  const scale = v => Math.round(520 * (Math.log10(Math.max(v, Math.pow(10, low))) - low) / span);
  const svg = chart(rows.length + 1, 54);
  for (let d = low; d <= low + span; d++) {
    const x = 240 + scale(Math.pow(10, d));
    svg.appendChild(el("rect", {x: x, y: 0, width: 1, height: rows.length * 54, class: "axis"}));
    svg.appendChild(el("text", {x: x - 10, y: rows.length * 54 + 16, class: "axis"}, seconds(Math.pow(10, d))));
  }
  rows.forEach((a, i) => {
    const y = i * 54 + 5, label = a.workflow_name + " / " + a.activity_name;
    const g = el("g", {class: "bar", "data-chart": "durations", "data-label": label, "data-value": a.avg_seconds});
    g.appendChild(el("text", {x: 0, y: y + 27}, label.length > 34 ? label.slice(0, 33) + "…" : label));
    [["p50_seconds", "#47a3f3"], ["avg_seconds", "#2186eb"], ["p95_seconds", "#0b69a3"]].forEach(([key, color], k) => {
      const w = scale(a[key]), yy = y + k * 15;
      g.appendChild(el("rect", {x: 240, y: yy, width: Math.max(w, 1), height: 13, fill: color}));
      g.appendChild(el("text", {x: 246 + w, y: yy + 11, class: "value"}, seconds(a[key])));
    });
    svg.appendChild(g);
  });
  target.appendChild(svg);
})();

// Each workflow's graph: activities in columns by their distance from the start, each with its
// attempts, p50 / p95 and failure rate; each transition with its order and how often it was taken.
(function () {
  const target = document.getElementById("graphs");
  if (!data.graphs.length) { target.innerHTML = '<p class="empty">No attempts in the window.</p>'; return; }
  const figures = Object.fromEntries(data.activities.map(a => [a.workflow_activity_id, a]));
  for (const graph of data.graphs) {
    const depth = {start: 0}, order = ["start"];
    for (let changed = true, rounds = 0; changed && rounds < 100; rounds++) {
      changed = false;
      for (const s of graph.steps) {
        const from = s.source === null ? "start" : s.source;
        if (depth[from] !== undefined && depth[s.target] === undefined) { depth[s.target] = depth[from] + 1; order.push(s.target); changed = true; }
      }
    }
    const rows = {}, at = {};
    for (const id of order) { const d = depth[id]; rows[d] = (rows[d] || 0) + 1; at[id] = [d, rows[d] - 1]; }
    const height = Math.max(...Object.values(rows)) * 90 + 20;
    const svg = el("svg", {width: 960, height: height, role: "img", "data-graph": graph.name});
    const box = id => { const [d, r] = at[id] || [0, 0]; return {x: 10 + d * 270, y: 10 + r * 90}; };  // 100 px between columns for the labels
    const names = Object.fromEntries(graph.activities.map(a => [a.id, a.name]));
    for (const s of graph.steps) {
      const from = box(s.source === null ? "start" : s.source), to = box(s.target);
      const x1 = from.x + (s.source === null ? 60 : 170), y1 = from.y + 30, x2 = to.x, y2 = to.y + 30;
      const bend = x2 <= x1 ? 70 : 0;  // a transition back to an earlier column loops below
      const g = el("g", {"data-from": s.source === null ? "start" : names[s.source], "data-to": names[s.target], "data-taken": s.taken});
      g.appendChild(el("path", {d: `M${x1},${y1} C${x1 + 40},${y1 + bend} ${x2 - 40},${y2 + bend} ${x2},${y2}`, fill: "none",
        stroke: s.taken ? "#3ebd93" : "#cbd2d9", "stroke-width": s.taken ? 2 : 1}));
      const lx = x2 > x1 ? x1 + 8 : (x1 + x2) / 2, ly = x2 > x1 ? y1 + (y2 - y1) * 0.2 - 5 : (y1 + y2) / 2 + bend - 4;
      g.appendChild(el("text", {x: lx, y: ly, class: "value"}, s.ordinal + " · " + s.taken + " taken"));
      g.appendChild(el("title", {}, s.label));
      svg.appendChild(g);
    }
    const start = box("start");
    svg.appendChild(el("circle", {cx: start.x + 30, cy: start.y + 30, r: 26, fill: "#f5f7fa", stroke: "#9aa5b1"}));
    svg.appendChild(el("text", {x: start.x + 14, y: start.y + 34}, "start"));
    for (const a of graph.activities) {
      if (!at[a.id]) continue;
      const {x, y} = box(a.id), f = figures[a.id];
      const g = el("g", {"data-node": a.name, "data-attempts": f ? f.attempts : 0});
      const failing = f && f.failure_rate;
      g.appendChild(el("rect", {x: x, y: y, width: 170, height: 60, rx: 6, fill: "#fff", stroke: failing ? "#e66a6a" : "#9aa5b1"}));
      g.appendChild(el("text", {x: x + 8, y: y + 17}, a.name + " (" + a.type + ")"));
      g.appendChild(el("text", {x: x + 8, y: y + 34, class: "value"}, f ? f.attempts + " attempts, " + ((f.failure_rate || 0) * 100).toFixed(0) + "% failed" : "no attempts"));
      g.appendChild(el("text", {x: x + 8, y: y + 50, class: "value"}, f ? "p50 " + seconds(f.p50_seconds) + ", p95 " + seconds(f.p95_seconds) : ""));
      svg.appendChild(g);
    }
    const title = document.createElement("h3");
    title.textContent = graph.name;
    target.appendChild(title);
    target.appendChild(svg);
  }
})();

// Failed and stuck processes: each linked to its page in the Temporal web UI.
function list(id, rows, columns, empty) {
  const target = document.getElementById(id);
  if (!rows.length) { target.innerHTML = '<p class="empty">' + empty + '</p>'; return; }
  const table = document.createElement("table");
  table.className = "list";
  const head = table.insertRow();
  for (const [title] of columns) { const th = document.createElement("th"); th.textContent = title; head.appendChild(th); }
  for (const row of rows) {
    const tr = table.insertRow();
    tr.setAttribute("data-list", id);
    tr.setAttribute("data-process", row.id);
    for (const [, key, kind] of columns) {
      const td = tr.insertCell();
      if (key === "id") {
        const a = document.createElement("a");
        a.href = data.ui + "workflow-process-" + row.id;
        a.textContent = row.id;
        td.appendChild(a);
      } else {
        td.textContent = row[key] === null ? "-" : (kind === "time" ? row[key].slice(0, 19).replace("T", " ") : row[key]);
        if (kind === "error") td.className = "error";
      }
    }
  }
  target.appendChild(table);
}
list("failed", data.failed, [["process", "id"], ["workflow", "workflow_name"], ["failed at", "at", "time"], ["error", "error", "error"]],
  "No process failed in the window.");
list("stuck", data.stuck, [["process", "id"], ["workflow", "workflow_name"], ["status", "status"], ["at activity", "position"],
  ["last progress", "last_progress", "time"]], "No live process is without progress.");
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


def _rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row.items()} for row in found]


def render_html(report: Report, *, ui: str) -> str:
    """The page, with the report's figures embedded as JSON; `ui`: the start of a process's
    page in the Temporal web UI (its workflow id follows)."""
    data = {
        "status_counts": report.status_counts,
        "activities": _rows(report.activities),
        "hourly": _rows(report.hourly),
        "failed": _rows(report.failed),
        "stuck": _rows(report.stuck),
        "graphs": report.graphs,
        "ui": ui,
    }
    embedded = json.dumps(data).replace("</", "<\\/")  # cannot close the script element
    generated = html.escape(report.generated_at.isoformat(timespec="seconds"))
    window = f"since {report.since.isoformat(timespec='seconds')}" if report.since else "all history (per hour: the last day)"
    stuck = f"{report.stuck_after.total_seconds() / 3600:g} h" if report.stuck_after >= timedelta(hours=1) else f"{report.stuck_after.total_seconds():g} s"
    return (
        PAGE.replace("__DATA__", embedded)
        .replace("__GENERATED__", generated)
        .replace("__WINDOW__", html.escape(window))
        .replace("__STUCK__", html.escape(stuck))
    )
