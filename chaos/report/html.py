"""``report.html``: one self-contained page per run that works offline (BokehJS inlined
once, at the end with the figures' document, so the text shows before the plots; only the
core bundle unless a figure needs more; no request leaves the page).

It shows the verdict, the seed and the full replay command; the timeline (see
:func:`chaos.report.plots.timeline_figure`); every checker's verdict with the operations
that prove it (evidence tables are cut at :data:`MAX_ROWS` rows for reading: verdict.json
holds all of it); for a linearizability failure, the key's operations as lanes; the fault
windows; the whole scenario value; and links to the other artifacts and Locust's reports
that exist beside it. Every plot is one root of the page's one Bokeh document
(``Bokeh.documents[0]`` in the page), inside ``<div id='timeline' class='plot'>`` or
``<div id='lanes-<check>-<n>' class='plot'>``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from bokeh.embed import components
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.models import LayoutDOM
from bokeh.resources import INLINE

from chaos.checkers.base import Verdict
from chaos.report.plots import lanes_figure, timeline_figure
from chaos.report.timeline import Timeline, key_operations

__all__ = ["render", "MAX_ROWS", "TIMELINE_ID"]

MAX_ROWS = 50  # rows of one evidence list shown in the page
MAX_TEXT = 240  # characters of one value shown in the page
TIMELINE_ID = "timeline"
_COLOURS = {"valid": "#2ca02c", "invalid": "#d62728", "unknown": "#e6a000"}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1240px;
 padding:0 16px 40px;color:#222}
h1{margin:18px 0 4px}h2{margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}
pre{background:#f6f8fa;padding:10px;overflow:auto;max-height:480px;border-radius:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa}.num{text-align:right;font-variant-numeric:tabular-nums}
details.check{border:1px solid #ddd;border-radius:4px;margin:8px 0;padding:6px 10px}
details.check summary{cursor:pointer}.more{color:#666;font-style:italic}
.figures td{border:none;padding:2px 14px 2px 0}
"""


def render(result: Any, *, replay: str, timeline: Timeline, summary: Mapping[str, Any],
           links: Sequence[str] = ()) -> str:
    """The page of ``result`` (a RunResult); ``summary``: the client operations' counts and
    latency (:func:`chaos.report.timeline.latency_summary`); ``links``: the names of the
    artifacts beside the page."""
    sc, verdict = result.scenario, result.verdict
    name = html.escape(sc.name)
    checks = verdict.parts or (verdict,)
    plots: dict[str, LayoutDOM] = {TIMELINE_ID: timeline_figure(timeline)}
    for i, check in enumerate(checks):
        lanes = _lanes(check, result.history)
        if lanes is not None:
            plots[_lanes_id(check, i)] = lanes
    script, divs = components(plots)  # one Bokeh document, one root per plot
    body = [
        f"<h1>{name} {_badge(verdict.valid)}</h1>",
        f"<p>{html.escape(sc.description)}</p>" if sc.description else "",
        f"<p>{html.escape(verdict.summary)}</p>",
        f"<p>seed <b>{sc.seed}</b>. Replay this run with:</p>",
        f"<pre id='replay'><code>{html.escape(replay)}</code></pre>",
        _figures(summary, timeline),
        "<h2>Timeline</h2>",
        "<p>Shaded: fault windows (from the fault's apply to its heal). Nemesis steps and "
        "client observations are never counted as operations.</p>",
        _plot(TIMELINE_ID, plots, divs),
        "<h2>Checks</h2>",
        *(_check(c, i, plots, divs) for i, c in enumerate(checks)),
        "<h2>Faults</h2>", _faults(timeline),
    ]
    if result.errors:
        body += ["<h2>Nemesis errors</h2><ul>",
                 *(f"<li>{html.escape(e)}</li>" for e in result.errors), "</ul>"]
    body += [
        "<h2>Scenario</h2>",
        f"<pre id='scenario'>{html.escape(orjson.dumps(sc.as_json(), option=orjson.OPT_INDENT_2, default=str).decode())}</pre>",
        "<h2>Artifacts</h2>", _links(links),
    ]
    # BokehJS last: the text shows at once, the plots when it has been evaluated
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>chaoslab: {name} {verdict.valid}</title><style>{_STYLE}</style>"
            f"</head>\n<body>\n" + "\n".join(part for part in body if part) + "\n"
            + _bokehjs(list(plots.values())) + "\n" + script + "\n</body></html>\n")


def _plot(div_id: str, plots: Mapping[str, LayoutDOM], divs: Mapping[str, str]) -> str:
    """The place of a plot, as tall as it will be (the plot is drawn into it by BokehJS
    at the end of the page)."""
    model = plots[div_id]
    rows = getattr(model, "children", None)
    height = (sum(child.height or 0 for child, *_ in rows) if rows is not None
              else model.height or 0)
    return (f"<div id='{div_id}' class='plot' style='min-height:{height}px'>"
            f"{divs[div_id]}</div>")


def _bokehjs(models: Sequence[LayoutDOM]) -> str:
    """BokehJS inlined: the core bundle, and the widgets, tables, GL or MathJax bundles
    only if one of ``models`` needs them."""
    bundle = bundle_for_objs_and_resources(models, INLINE)
    return "\n".join(f"<script type='text/javascript'>{js}</script>"
                     for js in bundle.js_raw)


def _badge(valid) -> str:
    colour = _COLOURS.get(str(valid), "#777")
    return f"<span class='badge' style='background:{colour}'>{str(valid).upper()}</span>"


def _figures(summary: Mapping[str, Any], tl: Timeline) -> str:
    lat = summary.get("latency_ms", {})
    cells = [("operations", summary.get("operations")), ("ok", summary.get("ok")),
             ("fail", summary.get("fail")), ("info (indefinite)", summary.get("info")),
             ("interrupted by the end", summary.get("interrupted")),
             ("ok/s", summary.get("ok_per_s")), ("p50 ms", lat.get("p50")),
             ("p99 ms", lat.get("p99")), ("max ms", lat.get("max")),
             ("faults", len(tl.faults)), ("plot bucket", f"{tl.bucket:g}s")]
    row = "".join(f"<td>{html.escape(k)}: <b>{_scalar(v)}</b></td>" for k, v in cells)
    return f"<table class='figures'><tr>{row}</tr></table>"


def _lanes(v: Verdict, history) -> LayoutDOM | None:
    """The lanes of a linearizability failure (None for any other check)."""
    if v.name != "linearizable" or str(v.valid) != "invalid" or not v.evidence.get("window"):
        return None
    e = v.evidence
    read = frozenset(op["value"] for op in e["window"] if op.get("f") == "read")
    context = key_operations(history, e.get("key"), float(e.get("window_start", 0)),
                             float(e.get("window_end", 0)), values=read)
    return lanes_figure(e, context)


def _lanes_id(v: Verdict, index: int) -> str:
    return f"lanes-{_slug(v.name)}-{index}"


def _check(v: Verdict, index: int, plots: Mapping[str, LayoutDOM],
           divs: Mapping[str, str]) -> str:
    opened = "" if v.ok else " open"
    div_id = _lanes_id(v, index)
    lanes = (f"<div class='lanes'>{_plot(div_id, plots, divs)}</div>" if div_id in plots
             else "")
    evidence = evidence_html(v.evidence) if v.evidence else "<p class='more'>no evidence</p>"
    return (f"<details class='check' id='check-{_slug(v.name)}'{opened}><summary>"
            f"<b>{html.escape(v.name)}</b> {_badge(v.valid)} {html.escape(v.summary)}"
            f"</summary>{lanes}{evidence}</details>")


def evidence_html(value: Any, depth: int = 0) -> str:
    """Evidence as nested tables: a list of records as one table of up to ``MAX_ROWS``
    rows (with how many more there are), a mapping as key / value rows."""
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        if depth >= 4:
            return _scalar(value)
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{evidence_html(v, depth + 1)}"
                       f"</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        shown, more = value[:MAX_ROWS], len(value) - MAX_ROWS
        note = (f"<div class='more'>… and {more} more (all of them are in verdict.json)</div>"
                if more > 0 else "")
        if all(isinstance(v, Mapping) for v in shown) and depth < 4:
            columns = list(dict.fromkeys(k for v in shown for k in v))
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
            rows = "".join("<tr>" + "".join(f"<td>{_cell(v.get(c), depth)}</td>"
                                            for c in columns) + "</tr>" for v in shown)
            return f"<table><tr>{head}</tr>{rows}</table>{note}"
        return ", ".join(_scalar(v) for v in shown) + note
    return _scalar(value)


def _cell(value: Any, depth: int) -> str:
    if isinstance(value, Mapping | list | tuple):
        return evidence_html(value, depth + 1)
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e6 else f"{value:.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(value, default=str).decode() if isinstance(
            value, Mapping | list | tuple) else str(value)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT - 1] + "…"
    return html.escape(text)


def _faults(tl: Timeline) -> str:
    if not tl.faults:
        return "<p>none</p>"
    rows = "".join(f"<tr><td class='num'>{w.step}</td><td>{html.escape(w.fault)}</td>"
                   f"<td>{html.escape(str(w.target or ''))}</td>"
                   f"<td class='num'>{w.start:.2f}</td><td class='num'>{w.end:.2f}</td>"
                   f"<td class='num'>{w.end - w.start:.2f}</td></tr>" for w in tl.faults)
    return (f"<table id='faults'><tr><th>step</th><th>fault</th><th>target</th>"
            f"<th>from (s)</th><th>healed (s)</th><th>lasted (s)</th></tr>{rows}</table>")


def _links(names: Sequence[str]) -> str:
    if not names:
        return "<p>none</p>"
    items = "".join(f"<li><a href='{html.escape(n, quote=True)}'>{html.escape(n)}</a></li>"
                    for n in names)
    return f"<ul id='artifacts'>{items}</ul>"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "check"
