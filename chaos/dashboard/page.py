"""The dashboard's page: one self-contained HTML document (inline CSS, plain JavaScript and
SVG; nothing fetched from elsewhere, so it works offline). It listens to ``/events`` and
updates in place. Stable hooks for tests and scripts: each node tile is
``[data-node=ID]`` with ``data-status`` (alive, suspect, dead, left, unknown) and
``data-breaker`` (closed, half_open, open, or empty without harness clients); the ring's arcs
are ``#ring path[data-owner=ID]``; active faults are ``#faults li[data-fault]``; the page's
``body[data-updated]`` is the time of the last snapshot shown."""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chaoslab dashboard</title>
<link rel="icon" href="data:,">
<style>
:root { --alive:#2e9e5b; --suspect:#e0a526; --dead:#d64545; --left:#8a8f98; --unknown:#5b6270;
        --bg:#101317; --panel:#191d23; --text:#e6e8eb; --muted:#9aa1ab; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
header { display:flex; gap:1.5em; align-items:baseline; padding:.8em 1.2em;
         background:var(--panel); border-bottom:1px solid #262b33; flex-wrap:wrap; }
header h1 { font-size:1.1em; margin:0; }
.muted { color:var(--muted); }
.badge { padding:.1em .6em; border-radius:1em; font-weight:600; font-size:.85em; }
.healthy, .alive, .closed { background:var(--alive); }
.degraded, .suspect, .half_open { background:var(--suspect); color:#111; }
.critical, .dead, .open { background:var(--dead); }
.left, .unknown { background:var(--left); }
main { display:grid; grid-template-columns: minmax(0,2fr) minmax(280px,1fr); gap:1em;
       padding:1em 1.2em; }
section { background:var(--panel); border-radius:8px; padding:.8em 1em; }
section h2 { font-size:.95em; margin:0 0 .6em; color:var(--muted); font-weight:600;
             text-transform:uppercase; letter-spacing:.05em; }
#traffic { display:grid; grid-template-columns: repeat(2, 1fr); gap:.8em; }
.metric { display:flex; gap:1.2em; }
.metric div b { display:block; font-size:1.5em; font-variant-numeric: tabular-nums; }
#nodes { display:grid; grid-template-columns: repeat(auto-fill, minmax(230px,1fr)); gap:.8em; }
.tile { border-radius:8px; padding:.7em .8em; border-left:8px solid var(--unknown);
        background:#20252d; }
.tile[data-status=alive] { border-color:var(--alive); }
.tile[data-status=suspect] { border-color:var(--suspect); }
.tile[data-status=dead] { border-color:var(--dead); background:#2b1c1e; }
.tile[data-status=left] { border-color:var(--left); opacity:.7; }
.tile .top { display:flex; justify-content:space-between; align-items:center; }
.tile .name { font-weight:700; font-size:1.05em; }
.tile dl { display:grid; grid-template-columns:auto auto; gap:.1em .8em; margin:.5em 0 0; }
.tile dt { color:var(--muted); white-space:nowrap; } .tile dd { margin:0; text-align:right;
           font-variant-numeric: tabular-nums; }
#ring svg { width:100%; max-width:320px; display:block; margin:auto; }
#legend { list-style:none; padding:0; margin:.6em 0 0; }
#legend li { display:flex; gap:.5em; align-items:center; }
.swatch { width:.9em; height:.9em; border-radius:2px; display:inline-block; }
#faults ul { list-style:none; margin:0; padding:0; }
#faults li { padding:.3em 0; border-bottom:1px solid #262b33; }
#faults li b { color:#ff8a80; }
table { border-collapse:collapse; width:100%; }
td, th { text-align:left; padding:.15em .4em; font-variant-numeric: tabular-nums; }
#conn.down { color:var(--dead); }
</style>
</head>
<body data-updated="">
<header>
  <h1>chaoslab</h1>
  <span>health <span id="health" class="badge unknown">unknown</span></span>
  <span id="quorum" class="muted"></span>
  <span id="run" class="muted"></span>
  <span id="source" class="muted"></span>
  <span id="conn" class="muted">connecting…</span>
</header>
<main>
  <div style="display:grid; gap:1em; align-content:start">
    <section><h2>Traffic <span id="window" class="muted"></span></h2>
      <div id="traffic">
        <div><div class="muted">gateway operations (registry and node gateways)</div>
          <div class="metric" id="t-gateway"></div></div>
        <div><div class="muted">replica requests (every client, the smart client too)</div>
          <div class="metric" id="t-replica"></div></div>
      </div>
    </section>
    <section><h2>Nodes</h2><div id="nodes"></div>
      <div id="registry-error" class="muted"></div></section>
  </div>
  <div style="display:grid; gap:1em; align-content:start">
    <section id="faults"><h2>Faults active now</h2><ul></ul></section>
    <section id="ring"><h2>Hash ring</h2><div id="ring-svg"></div><ul id="legend"></ul></section>
    <section id="breakers"><h2>Breakers (the harness's clients)</h2><div></div></section>
  </div>
</main>
<script>
"use strict";
const PALETTE = ["#4e79a7","#f28e2b","#59a14f","#e15759","#76b7b2","#edc948","#b07aa1",
                 "#ff9da7","#9c755f","#bab0ac"];
const $ = (sel) => document.querySelector(sel);
const fmt = (v, digits = 1, unit = "") => v === null || v === undefined ? "–" :
  Number(v).toFixed(digits) + unit;
const pct = (v) => v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%";
let ringKey = "";

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function colourOf(node, ringNodes) {
  const i = [...ringNodes].sort().indexOf(node);
  return i < 0 ? "#555" : PALETTE[i % PALETTE.length];
}

function renderTraffic(id, t) {
  const box = $(id);
  box.replaceChildren();
  const parts = t ? [["per second", fmt(t.rate, 0)], ["errors (5xx)", pct(t.error_rate)],
                     ["p99", fmt(t.p99_ms, 1, " ms")]] : [["per second", "–"], ["errors", "–"],
                     ["p99", "–"]];
  for (const [label, value] of parts) {
    const d = el("div"); d.append(el("b", {}, value), el("span", {class: "muted"}, label));
    box.append(d);
  }
}

function tileFor(node) {
  let tile = document.querySelector(`#nodes [data-node="${CSS.escape(node.id)}"]`);
  if (!tile) {
    tile = el("div", {class: "tile", "data-node": node.id, id: "node-" + node.id});
    tile.innerHTML = `<div class="top"><span class="name"></span><span class="badge st"></span></div>
      <dl><dt>last heartbeat</dt><dd class="hb"></dd><dt>keys</dt><dd class="keys"></dd>
      <dt>ring share</dt><dd class="share"></dd><dt>vnodes</dt><dd class="vnodes"></dd>
      <dt>hints pending</dt><dd class="hints"></dd><dt>replica req/s</dt><dd class="rate"></dd>
      <dt>errors</dt><dd class="err"></dd><dt>p99</dt><dd class="p99"></dd>
      <dt>breaker</dt><dd class="brk"></dd></dl>`;
    tile.querySelector(".name").textContent = node.id;
    $("#nodes").append(tile);
  }
  return tile;
}

function renderNodes(nodes) {
  const seen = new Set();
  for (const n of nodes) {
    seen.add(n.id);
    const tile = tileFor(n);
    tile.dataset.status = n.status;
    tile.dataset.reachable = n.reachable ? "yes" : "no";
    tile.dataset.breaker = n.breaker ? (n.breaker.state || "") : "";
    const st = tile.querySelector(".st");
    st.className = "badge st " + n.status; st.textContent = n.status;
    tile.querySelector(".hb").textContent = n.since_heartbeat === null ||
      n.since_heartbeat === undefined ? "–" : fmt(n.since_heartbeat, 1, " s ago");
    tile.querySelector(".keys").textContent = n.keys ?? (n.reachable ? "–" : "unreachable");
    tile.querySelector(".share").textContent = n.share === null || n.share === undefined ?
      "–" : pct(n.share);
    tile.querySelector(".vnodes").textContent = n.vnodes ?? "–";
    tile.querySelector(".hints").textContent = n.hints_pending ?? "–";
    tile.querySelector(".rate").textContent = n.traffic ? fmt(n.traffic.rate, 0) : "–";
    tile.querySelector(".err").textContent = n.traffic ? pct(n.traffic.error_rate) : "–";
    tile.querySelector(".p99").textContent = n.traffic ? fmt(n.traffic.p99_ms, 1, " ms") : "–";
    const b = n.breaker;
    tile.querySelector(".brk").textContent = !b ? "no clients" :
      `${b.state} (${b.counts.open} open, ${b.counts.half_open} half-open / ${b.clients})`;
    tile.title = n.error ? n.id + ": " + n.error : "";
  }
  for (const tile of document.querySelectorAll("#nodes [data-node]"))
    if (!seen.has(tile.dataset.node)) tile.remove();
}

function arcPath(a0, a1, r0, r1) {
  const p = (a, r) => [100 + r * Math.cos(a), 100 + r * Math.sin(a)];
  const large = a1 - a0 > Math.PI ? 1 : 0;
  const [x0, y0] = p(a0, r1), [x1, y1] = p(a1, r1), [x2, y2] = p(a1, r0), [x3, y3] = p(a0, r0);
  return `M${x0},${y0} A${r1},${r1} 0 ${large} 1 ${x1},${y1} L${x2},${y2} ` +
         `A${r0},${r0} 0 ${large} 0 ${x3},${y3} Z`;
}

function renderRing(ring, nodes) {
  const key = JSON.stringify([ring.nodes, ring.vnodes]);
  if (key !== ringKey) {
    ringKey = key;
    const svgNS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", "0 0 200 200");
    const arcs = ring.arcs;
    // each token owns the arc from the previous token; runs of one owner are drawn as one
    for (let i = 0; i < arcs.length; i++) {
      const [pos, owner] = arcs[i];
      const prev = i === 0 ? arcs[arcs.length - 1][0] - 1 : arcs[i - 1][0];
      const a0 = 2 * Math.PI * prev - Math.PI / 2, a1 = 2 * Math.PI * pos - Math.PI / 2;
      const path = document.createElementNS(svgNS, "path");
      path.setAttribute("d", arcPath(a0, a1, 62, 92));
      path.setAttribute("fill", colourOf(owner, ring.nodes));
      path.setAttribute("data-owner", owner);
      svg.append(path);
    }
    const label = document.createElementNS(svgNS, "text");
    label.setAttribute("x", "100"); label.setAttribute("y", "104");
    label.setAttribute("text-anchor", "middle"); label.setAttribute("fill", "#9aa1ab");
    label.textContent = arcs.length ? `${arcs.length} tokens` : "empty ring";
    svg.append(label);
    $("#ring-svg").replaceChildren(svg);
  }
  const legend = $("#legend");
  legend.replaceChildren();
  for (const n of nodes.filter((n) => n.on_ring)) {
    const li = el("li", {"data-node": n.id});
    li.append(el("span", {class: "swatch", style: `background:${colourOf(n.id, ring.nodes)}`}),
              el("span", {}, `${n.id}: ${pct(n.share)} of the keys, ${n.vnodes} vnodes, ` +
                             `${n.keys ?? "?"} keys held`));
    legend.append(li);
  }
}

function renderFaults(snap) {
  const ul = $("#faults ul");
  ul.replaceChildren();
  if (!snap.run && !snap.faults.length) {
    ul.append(el("li", {class: "muted"}, "no scenario is running against this cluster"));
    return;
  }
  if (!snap.faults.length) ul.append(el("li", {class: "muted"}, "none"));
  for (const f of snap.faults) {
    const li = el("li", {"data-fault": f.kind});
    li.append(el("b", {}, f.fault), el("span", {class: "muted"},
      ` for ${fmt(f.age_s, 1, " s")}` +
      (f.heals_in_s === null ? "" : `, heals in ${fmt(Math.max(0, f.heals_in_s), 1, " s")}`)));
    ul.append(li);
  }
}

function renderBreakers(snap) {
  const box = $("#breakers div");
  if (!snap.breakers.clients) {
    box.textContent = snap.breakers.source ? "no smart-client process is running" :
      "no harness clients known (breakers are shown for a running scenario)";
    return;
  }
  const table = el("table");
  table.append(el("tr")); table.firstChild.append(el("th", {}, "node"), el("th", {}, "closed"),
    el("th", {}, "half-open"), el("th", {}, "open"));
  for (const n of snap.nodes.filter((n) => n.breaker)) {
    const tr = el("tr", {"data-node": n.id, "data-breaker": n.breaker.state});
    const c = n.breaker.counts;
    tr.append(el("td", {}, n.id), el("td", {}, String(c.closed)),
              el("td", {}, String(c.half_open)), el("td", {}, String(c.open)));
    table.append(tr);
  }
  box.replaceChildren(el("div", {class: "muted"}, `${snap.breakers.clients} client process(es)`),
                      table);
}

function render(snap) {
  if (snap.error) { $("#conn").textContent = "poll failed: " + snap.error; return; }
  const health = $("#health");
  health.className = "badge " + snap.health; health.textContent = snap.health;
  const s = snap.settings || {};
  $("#quorum").textContent = s.n ? `N=${s.n} W=${s.w} R=${s.r} · heartbeat ${s.heartbeat_interval}s, ` +
    `suspect after ${s.suspect_after}, dead after ${s.dead_after} missed` : "";
  $("#run").textContent = snap.run ? `scenario ${snap.run.scenario} seed ${snap.run.seed}` +
    (snap.run.running ? "" : " (ended)") : "";
  $("#source").textContent = snap.source;
  $("#registry-error").textContent = snap.registry_ok ? "" :
    `registry ${snap.registry} does not answer: ${snap.registry_error}`;
  $("#window").textContent = `(over the last ${snap.traffic.window_s} s)`;
  renderTraffic("#t-gateway", snap.traffic.gateway);
  renderTraffic("#t-replica", snap.traffic.replica);
  renderNodes(snap.nodes);
  renderRing(snap.ring, snap.nodes);
  renderFaults(snap);
  renderBreakers(snap);
  document.body.dataset.updated = String(snap.time);
  const conn = $("#conn");
  conn.className = "muted"; conn.textContent = "live · " + new Date(snap.time * 1000).toLocaleTimeString();
}

const source = new EventSource("events");
source.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
source.onerror = () => { const c = $("#conn"); c.className = "down";
                         c.textContent = "disconnected: retrying…"; };
</script>
</body>
</html>
"""
