"""The report's Bokeh figures, built from data (pure: no I/O).

- :func:`timeline_figure`: throughput, failed and indefinite operations, p50/p99 latency,
  and membership and breaker changes, four rows on one shared time axis (a grid named
  :data:`TIMELINE`). Each fault window is shaded across every row; in the top row it is one
  ``BoxAnnotation`` named ``fault:<step>`` with a ``Label`` (fault and target) named
  ``fault-label:<step>``; the rows below repeat the shade as ``fault-band:<step>``.
- :func:`lanes_figure`: a linearizability failure as Porcupine draws it: the key's
  operations as bars from invocation to completion, one lane per process, and the point
  past which no order of them exists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from bokeh.layouts import gridplot
from bokeh.models import (
    BoxAnnotation,
    ColumnDataSource,
    FactorRange,
    FixedTicker,
    HoverTool,
    Label,
    LabelSet,
    LayoutDOM,
    Legend,
    Node,
    Range1d,
    Span,
)
from bokeh.plotting import figure

from chaos.report.timeline import Timeline

__all__ = ["timeline_figure", "lanes_figure", "FAULT_SHAPE", "TIMELINE"]

TIMELINE = "timeline"  # the name of the timeline's grid (the root of its Bokeh document)
FAULT_SHAPE = "fault"  # fault:<step>: the shaded, labelled window in the timeline's top row
_FAULT_COLOURS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_BREAKER = {"open": "#d62728", "half-open": "#ff7f0e", "half_open": "#ff7f0e",
            "closed": "#2ca02c"}
_OK, _FAIL, _INFO = "#2ca02c", "#d62728", "#ff7f0e"
_LANE_COLOURS = {"write ok": "#1f77b4", "read ok": _OK, "write pending": "#aaaaaa",
                 "write info": "#aaaaaa"}
_TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"
_LEFT = 90  # pixels left of every row's frame, so that the rows' time axes line up
_MIN_MS = 1e-3  # a latency of 0 ms is drawn here on the log axis
_LOG_TICKS = [m * 10.0 ** k for k in range(-3, 7) for m in (1, 2, 5)]  # 1, 2, 5, 10... ms


def timeline_figure(tl: Timeline) -> LayoutDOM:
    """The run over time: four rows sharing the x axis (seconds since the traffic began)."""
    x_range = Range1d(0, max(tl.span, tl.bucket), bounds="auto")
    mid = np.asarray(tl.times, dtype=float) + tl.bucket / 2
    rows = [_row(x_range, 250, "client operations per second (ok)"),
            _row(x_range, 190, "failed and indefinite (info) operations per second"),
            _row(x_range, 250, "latency of ok operations (ms, log scale)",
                 y_axis_type="log"),
            _marks_row(x_range, tl)]
    ops, fails, latency, _ = rows
    latency.yaxis.ticker = FixedTicker(ticks=_LOG_TICKS)
    if all(v is None for v in (*tl.p50_ms, *tl.p99_ms)):
        latency.y_range = Range1d(1, 1000)  # a log axis cannot fit nothing
    ok = ops.line(mid, np.asarray(tl.per_second(tl.ok)), color=_OK, line_width=1.5,
                  legend_label="ok/s")
    ops.y_range.start = 0
    ops.add_tools(HoverTool(renderers=[ok], mode="vline",
                            tooltips=[("t", "@x{0.00}s"), ("ok/s", "@y{0.0}")]))
    for counts, name, colour, offset in ((tl.fail, "fail/s", _FAIL, -0.225),
                                         (tl.info, "info/s (indefinite)", _INFO, 0.225)):
        n = np.asarray(counts, dtype=float)
        hit = n > 0  # side by side in each bucket, never one over the other
        bars = fails.vbar(x=mid[hit] + tl.bucket * offset, top=n[hit] / tl.bucket,
                          width=tl.bucket * 0.45, color=colour, legend_label=name)
        fails.add_tools(HoverTool(renderers=[bars], tooltips=[("t", "@x{0.00}s"),
                                                              (name, "@top{0.0}")]))
    fails.y_range.start = 0
    if not any(tl.fail) and not any(tl.info):
        fails.y_range = Range1d(0, 1)  # nothing failed: still an axis, at zero
    for values, name, colour in ((tl.p50_ms, "p50 ms", "#1f77b4"),
                                 (tl.p99_ms, "p99 ms", "#9467bd")):
        line = latency.line(mid, _log_values(values), color=colour, line_width=1.2,
                            legend_label=name)  # NaN (no ok operation): a gap
        latency.add_tools(HoverTool(renderers=[line], mode="vline",
                                    tooltips=[("t", "@x{0.00}s"), (name, "@y{0.000}")]))
    for i, w in enumerate(tl.faults):
        colour = _FAULT_COLOURS[i % len(_FAULT_COLOURS)]
        right = w.start + max(w.end - w.start, tl.span * 0.003)  # an instant step shows
        for row, p in enumerate(rows):
            p.add_layout(BoxAnnotation(
                left=w.start, right=right, fill_color=colour, fill_alpha=0.13,
                line_color=colour, line_alpha=0.6, line_width=1, level="underlay",
                name=f"{FAULT_SHAPE}:{w.step}" if row == 0 else f"fault-band:{w.step}"))
        label = f"{w.fault} {w.target}" if w.target else w.fault
        ops.add_layout(Label(x=w.start, y=Node(target="frame", symbol="top"), x_offset=3,
                             y_offset=-3, anchor="top_left", text=label, text_color=colour,
                             text_font_size="11px", name=f"fault-label:{w.step}"))
    rows[-1].xaxis.axis_label = "seconds since the traffic started"
    grid = gridplot([[p] for p in rows], toolbar_location="right", merge_tools=True,
                    sizing_mode="stretch_width")
    grid.name = TIMELINE
    return grid


def _row(x_range: Range1d, height: int, title: str, **kwargs) -> figure:
    p = figure(x_range=x_range, height=height, title=title, tools=_TOOLS,
               sizing_mode="stretch_width", min_border_left=_LEFT, min_border_right=10,
               **kwargs)
    p.title.text_font_size = "13px"
    p.toolbar.logo = None
    _legend(p)
    return p


def _legend(p: figure) -> None:
    """A one-line legend above the frame (so that it hides no data, and every row's frame
    is as wide), to which the glyphs drawn with a ``legend_label`` add themselves; a click
    on an entry hides its glyphs."""
    p.add_layout(Legend(orientation="horizontal", location="top_right", click_policy="hide",
                        label_text_font_size="11px", padding=0, spacing=10, margin=2,
                        border_line_alpha=0, glyph_height=14, label_height=14), "above")


def _log_values(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([math.nan if v is None else max(v, _MIN_MS) for v in values],
                      dtype=float)


def _marks_row(x_range: Range1d, tl: Timeline) -> figure:
    lanes = sorted({m.lane for m in tl.marks}, key=lambda lane: (lane != "cluster", lane))
    p = _row(x_range, 110 + 24 * max(1, len(lanes)), "membership and breaker changes",
             y_range=FactorRange(*(lanes or ["cluster"])))
    groups: dict[tuple[str, str], list] = {}
    for m in tl.marks:
        name = f"breaker → {m.state}" if m.kind == "breaker" else m.kind
        groups.setdefault((m.kind, name), []).append(m)
    drawn = []
    for (kind, name), marks in groups.items():
        state = marks[0].state or ""
        colour = _BREAKER.get(state, "#7f7f7f") if kind == "breaker" else "#6a3d9a"
        source = ColumnDataSource({
            "x": [m.time for m in marks], "y": [m.lane for m in marks],
            "text": [f"{m.lane}: {m.label} ({m.detail})" for m in marks]})
        drawn.append(p.scatter(
            "x", "y", source=source, color=colour, size=11 if kind == "breaker" else 10,
            marker="dash" if kind == "breaker" else "star", line_width=2,
            angle=math.pi / 2 if kind == "breaker" else 0.0, legend_label=name))
    if drawn:
        p.add_tools(HoverTool(renderers=drawn, tooltips=[("t", "@x{0.000}s"),
                                                         ("", "@text")]))
    return p


def lanes_figure(evidence: Mapping[str, Any], context: Sequence[Mapping[str, Any]] = ()
                 ) -> figure:
    """A linearizability checker's evidence (``window``: the operations of the smallest
    window that cannot be linearized, ``window_start``/``window_end``) as lanes, with the
    key's other operations around it (``context``, same shape) drawn faint. The window's
    operations are labelled with their values; every bar has a tooltip."""
    window: Sequence[Mapping[str, Any]] = evidence.get("window") or ()
    start = float(evidence.get("window_start", 0.0))
    end = float(evidence.get("window_end", start))
    inside = {(op["process"], op["invoke"]) for op in window}
    context = [op for op in context if (op["process"], op["invoke"]) not in inside]
    everything = [*window, *context]
    processes = sorted({str(op["process"]) for op in everything})
    lo = min([start, *(op["invoke"] for op in context)])
    hi = max([end, *(op["completion"] for op in context if op.get("completion") is not None)])
    span = max(hi - lo, 1e-3)
    culprit = _culprit(window, end)
    p = figure(y_range=FactorRange(*processes), height=max(240, 90 + 34 * len(processes)),
               x_range=Range1d(lo - span * 0.03, hi + span * 0.12), tools=_TOOLS,
               sizing_mode="stretch_width", name="lanes",
               title=f"key {evidence.get('key')}: operations by process (window shaded)",
               x_axis_label="seconds since the traffic started", y_axis_label="process")
    p.title.text_font_size = "13px"
    p.toolbar.logo = None
    _legend(p)
    groups: dict[str, list] = {}
    if context:
        groups["outside the window"] = context  # drawn first: under the window's bars
    for op in window:
        groups.setdefault(_kind(op), []).append(op)
    bars = []
    for kind, ops in groups.items():
        faint = kind == "outside the window"
        finish = [op["completion"] if op.get("completion") is not None
                  and op.get("type") == "ok" else max(end, op["invoke"]) + span * 0.1
                  for op in ops]
        source = ColumnDataSource({
            "process": [str(op["process"]) for op in ops],
            "invoke": [op["invoke"] for op in ops],
            "finish": [max(f, op["invoke"] + span * 0.004)
                       for f, op in zip(finish, ops, strict=True)],
            "label": [_label(op) for op in ops],
            "outline": [3 if op is culprit else 0 for op in ops],
            "hover": [f"{op['process']}: {_label(op)} [{op.get('type')}] "
                      f"{op['invoke']:.4f}s → {_when(op.get('completion'))}" for op in ops],
        })
        bars.append(p.hbar(
            y="process", left="invoke", right="finish", height=0.6, source=source,
            fill_color="#9e9e9e" if faint else _LANE_COLOURS.get(kind, "#7f7f7f"),
            fill_alpha=0.35 if faint else 0.95, line_color=_FAIL, line_width="outline",
            hatch_pattern=" " if faint or kind.endswith(" ok") else "/",
            hatch_color="#555555", hatch_alpha=0.6, legend_label=kind, name=kind))
        if not faint:
            p.add_layout(LabelSet(x="invoke", y="process", text="label", source=source,
                                  x_offset=3, y_offset=-5, text_font_size="10px",
                                  text_color="#111111"))
    p.add_tools(HoverTool(renderers=bars, tooltips="@hover"))
    p.add_layout(BoxAnnotation(left=start, right=end, fill_color="#ffdd57", fill_alpha=0.15,
                               line_alpha=0, level="underlay", name="window"))
    p.add_layout(Span(location=end, dimension="height", line_color=_FAIL, line_width=2,
                      line_dash="dashed", name="no-order"))
    p.add_layout(Label(x=end, y=Node(target="frame", symbol="top"), x_offset=-4,
                       y_offset=-3, anchor="top_right", text_color=_FAIL,
                       text_font_size="11px", name="no-order-label",
                       text="no order of the window's operations exists past here"))
    return p


def _kind(op: Mapping[str, Any]) -> str:
    return f"{op.get('f')} {op.get('type')}"


def _label(op: Mapping[str, Any]) -> str:
    value = op.get("value")
    text = "absent" if value is None else str(value)
    if len(text) > 16:
        text = text[:15] + "…"
    return f"{'W' if op.get('f') == 'write' else 'R'} {text}"


def _when(t) -> str:
    return "never completed" if t is None else f"{t:.4f}s"


def _culprit(window: Sequence[Mapping[str, Any]], end: float):
    """The operation whose completion ends the window (a read before a write), as the
    checker names it in its summary."""
    ending = [op for op in window if op.get("completion") == end]
    return min(ending, key=lambda op: op.get("f") == "write", default=None)
