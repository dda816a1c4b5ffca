"""The run report: the timeline's data (bucketed, nemesis records never counted as client
operations), the Bokeh figures (one shaded, labelled window per fault, lanes for a
linearizability failure), the page (self-contained: BokehJS inlined, core bundle only;
evidence shown and cut for reading) and the JUnit XML."""

from __future__ import annotations

import html
import json
import re
from xml.etree import ElementTree

import pytest
from bokeh.models import BoxAnnotation, GlyphRenderer, HBar, Label, Span

from chaos.checkers.base import Validity, Verdict
from chaos.history import NEMESIS, History
from chaos.nemesis import Schedule
from chaos.report import write_report
from chaos.report.html import MAX_ROWS, evidence_html
from chaos.report.junit import junit_xml
from chaos.report.plots import FAULT_SHAPE, TIMELINE, lanes_figure, timeline_figure
from chaos.report.sample import synthetic_run
from chaos.report.timeline import (
    bucket_size,
    client_pairs,
    latency_summary,
    percentile,
    timeline,
)
from chaos.scenario import RunResult, Scenario

pytestmark = pytest.mark.unit


# ---- small hand-made runs (test_report_journal.py uses them too) -------------------------
def history(*records) -> History:
    """Records ``(t, process, type, f, key, value[, error])`` on a history whose t0 is 0."""
    h = History(clock=lambda: 0.0, t0=0.0)
    for t, process, type_, f, key, value, *error in records:
        h.add(process, type_, f, key, value, error[0] if error else None, at=t)
    return h


def fault(step: int, kind: str, target: str | None, start: float, end: float,
          apply: str = "ok", heal: str | None = "ok") -> list[tuple]:
    """The nemesis's records of one step: apply at ``start``, heal at ``end``."""
    out = [(start, NEMESIS, "invoke", kind, target, {"step": step, "phase": "apply"}),
           (start + 0.01, NEMESIS, apply, kind, target, {"step": step, "phase": "apply"},
            None if apply == "ok" else "boom")]
    if heal:
        out += [(end - 0.01, NEMESIS, "invoke", kind, target, {"step": step, "phase": "heal"}),
                (end, NEMESIS, heal, kind, target, {"step": step, "phase": "heal"})]
    return out


def op(t: float, process: str, f: str, key: str, value, outcome: str = "ok",
       took: float = 0.01, error: str | None = None) -> list[tuple]:
    return [(t, process, "invoke", f, key, value if f == "write" else None),
            (t + took, process, outcome, f, key, value, error)]


def result(h: History, *parts: Verdict, schedule: tuple[str, ...] = ("kill:node-2@3+2",),
           errors: tuple[str, ...] = (), total_s: float = 12.0) -> RunResult:
    sc = Scenario(name="hand-made", seed=7, schedule=Schedule.parse(schedule, at=0, duration=0))
    parts = parts or (Verdict("availability", Validity.VALID, "all good", {"ok": 1}),)
    verdict = Verdict("all", Validity.combine(p.valid for p in parts),
                      "; ".join(f"{p.name}: {p.valid}" for p in parts), parts=parts)
    return RunResult(sc, h, {}, verdict, {"cluster_start_s": 1.0, "total_s": total_s}, None,
                     {"operations": 1}, errors)


# ---- the tests ------------------------------------------------------------------------
def _nemesis_and_events_only_fail_or_info():
    """A failed apply, a heal that timed out (info), breaker observations (info), and one
    client write."""
    return history(
        *fault(0, "kill", "node-2", 3.0, 5.0, apply="fail", heal="info"),
        (3.2, "event:smart-client-1", "info", "breaker", "node-2", {"from": "closed", "to": "open"}),
        (0.0, "event:smart-client-1", "info", "breakers", None, {"threshold": 3}),
        *op(4.0, "w0-1", "write", "k", "v1"),
    )


def test_nemesis_records_and_observations_never_count_as_client_failures(tmp_path):
    h = _nemesis_and_events_only_fail_or_info()
    tl = timeline(h)
    assert (sum(tl.ok), sum(tl.fail), sum(tl.info)) == (1, 0, 0)
    summary = latency_summary(client_pairs(h))
    assert (summary["operations"], summary["fail"], summary["info"]) == (1, 0, 0)
    write_report(result(h), str(tmp_path))
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["throughput"]["fail"] == journal["throughput"]["info"] == 0
    assert [(d["ok"], d["fail"], d["info"]) for d in journal["steady_states"]["during"]] == [
        (1, 0, 0)]
    page = (tmp_path / "report.html").read_text()
    assert "fail: <b>0</b>" in page and "info (indefinite): <b>0</b>" in page


def test_fail_and_info_are_counted_apart_and_interrupted_operations_not_at_all():
    h = history(*op(0.1, "a", "write", "k", "1", "fail", error="no replica reached"),
                *op(0.2, "b", "write", "k", "2", "info", error="timeout"),
                *op(0.3, "c", "read", "k", None, "info", error="interrupted"),
                *op(0.4, "d", "read", "k", "1"))
    tl = timeline(h)
    assert (sum(tl.ok), sum(tl.fail), sum(tl.info)) == (1, 1, 1)
    s = latency_summary(client_pairs(h), duration=1.0)
    assert (s["ok"], s["fail"], s["info"], s["interrupted"]) == (1, 1, 1, 1)
    assert (s["ok_per_s"], s["ok_ratio"]) == (1.0, round(1 / 3, 5))


def test_the_plot_is_downsampled_to_at_most_max_points_and_loses_no_operation():
    records = []
    for i in range(3000):
        records += op(i * 0.4, f"p{i % 7}", "write", f"k{i % 13}", str(i), took=0.002)
    tl = timeline(history(*records), max_points=100)
    assert len(tl.times) <= 100 and tl.bucket == 20.0  # 1200 s in nice 20 s buckets
    assert sum(tl.ok) == 3000


@pytest.mark.parametrize(("span", "expected"), [(0, 0.25), (60, 0.25), (600, 0.5),
                                                (3600, 2.0), (1234, 1.0)])
def test_buckets_are_nice_and_never_finer_than_a_quarter_second(span, expected):
    assert bucket_size(span) == expected


def test_latency_percentiles_are_of_ok_operations_in_each_bucket():
    records = []
    for ms in range(1, 101):  # 1..100 ms, all completing in the first bucket
        records += op(0.001, f"p{ms}", "read", "k", None, took=ms / 1000)
    records += op(0.05, "slow", "read", "k", None, "info", took=0.19)  # not ok: not counted
    tl = timeline(history(*records))
    assert tl.p50_ms[0] == pytest.approx(50) and tl.p99_ms[0] == pytest.approx(99)
    assert percentile([], 50) is None


def test_breaker_transitions_and_membership_changes_are_marks_on_the_time_axis():
    h = history(*fault(0, "scale-up", None, 6.0, 6.1),
                (2.0, "event:smart-client-9", "info", "breaker", "node-3",
                 {"from": "closed", "to": "open"}),
                (0.0, "event:smart-client-9", "info", "breakers", None, {"threshold": 3}),
                *op(0.5, "w", "read", "k", None))
    marks = timeline(h).marks
    assert [(m.time, m.kind, m.lane, m.label, m.state) for m in marks] == [
        (2.0, "breaker", "node-3", "closed→open", "open"),
        (6.01, "membership", "cluster", "scale-up", None)]


def test_the_timeline_has_one_labelled_shaded_shape_per_fault_window():
    h = history(*fault(0, "kill", "node-2", 3.0, 5.0), *fault(1, "pause", "node-1", 6.0, 8.0),
                *fault(2, "scale-up", None, 9.0, 9.01), *op(0.5, "w", "read", "k", None))
    grid = timeline_figure(timeline(h))
    assert grid.name == TIMELINE
    rows = [child for child, *_ in grid.children]
    assert len(rows) == 4 and len({id(p.x_range) for p in rows}) == 1  # one time axis
    boxes = sorted((b for b in grid.select({"type": BoxAnnotation})
                    if (b.name or "").startswith(f"{FAULT_SHAPE}:")),
                   key=lambda b: int(b.name.split(":")[1]))  # select() has no order
    assert [b.name for b in boxes] == [f"{FAULT_SHAPE}:{i}" for i in range(3)]
    assert all(b in rows[0].center for b in boxes)
    assert all(b.right > b.left for b in boxes)  # an instant step still shows
    labels = {x.name: x.text for x in grid.select({"type": Label})}
    assert [labels[f"fault-label:{i}"] for i in range(3)] == [
        "kill node-2", "pause node-1", "scale-up"]
    for i in range(3):  # the same window shaded in every row below
        bands = list(grid.select({"type": BoxAnnotation, "name": f"fault-band:{i}"}))
        assert [b.left for b in bands] == [boxes[i].left] * 3
    assert [len(list(p.select({"name": f"{FAULT_SHAPE}:0"}))) for p in rows] == [1, 0, 0, 0]


def test_the_page_is_self_contained_and_links_only_the_files_present(tmp_path):
    run = synthetic_run(operations=400, duration=16)
    (tmp_path / "locust.html").write_text("<html></html>")
    paths = write_report(run, str(tmp_path), replay="chaoslab run --seed 1 kill-one")
    assert set(paths) >= {"verdict.json", "history.jsonl", "junit.xml", "journal.json",
                          "report.html"}
    page = (tmp_path / "report.html").read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=['\"]?https?:", page)  # no CDN
    assert page.count("/* BEGIN bokeh.min.js */") == 1  # BokehJS inlined, once
    assert not re.search(r"bokeh-(widgets|tables|gl|mathjax)", page)  # the core bundle only
    assert page.index("bokeh.min.js") > page.index("id='scenario'")  # after the text
    assert page.count("class='plot'") == 1 and "<div id='timeline'" in page
    assert 'data-root-id="' in page.split("<div id='timeline'")[1][:300]
    assert "chaoslab run --seed 1 kill-one" in page
    assert html.escape('"name": "synthetic"') in page  # the whole scenario value
    assert "href='locust.html'" in page and "locust_stats.csv" not in page
    recorded = json.loads((tmp_path / "verdict.json").read_text())
    assert recorded["replay"] == "chaoslab run --seed 1 kill-one"
    assert [f["fault"] for f in recorded["faults"]] == ["kill", "partition"]


def test_evidence_is_shown_readably_and_cut_for_reading_only():
    rows = [{"key": f"k{i}", "at": i / 3} for i in range(MAX_ROWS + 25)]
    shown = evidence_html({"lost": rows, "count": len(rows)})
    assert shown.count("<tr>") == 1 + 1 + MAX_ROWS + 1  # two keys, a header, MAX_ROWS rows
    assert "and 25 more" in shown and "k49" in shown and "k50" not in shown


def test_a_linearizability_failure_is_drawn_as_lanes_with_the_point_of_no_order(tmp_path):
    run = synthetic_run(operations=600, duration=16, stale_read=True)
    lin = next(p for p in run.verdict.parts if p.name == "linearizable")
    assert lin.valid is Validity.INVALID
    fig = lanes_figure(lin.evidence)
    assert set(fig.y_range.factors) == {op["process"] for op in lin.evidence["window"]}
    bars = [r for r in fig.select({"type": GlyphRenderer}) if isinstance(r.glyph, HBar)]
    assert sum(len(r.data_source.data["invoke"]) for r in bars) == len(lin.evidence["window"])
    assert sum(w > 0 for r in bars for w in r.data_source.data["outline"]) == 1  # the culprit
    line = fig.select_one({"name": "no-order", "type": Span})
    assert line.location == lin.evidence["window_end"]
    window = fig.select_one({"name": "window", "type": BoxAnnotation})
    assert (window.left, window.right) == (lin.evidence["window_start"],
                                           lin.evidence["window_end"])
    write_report(run, str(tmp_path))
    page = (tmp_path / "report.html").read_text()
    assert page.count("class='plot'") == 2 and "<div id='lanes-linearizable-" in page


def test_junit_has_one_case_per_checker_and_one_for_the_scenario():
    parts = (Verdict("availability", Validity.VALID, "fine"),
             Verdict("durability", Validity.INVALID, "lost 1", {"lost": ["k"]}),
             Verdict("stale-reads", Validity.UNKNOWN, "no reads"))
    verdict = Verdict("all", Validity.INVALID, "worst", parts=parts)
    suite = ElementTree.fromstring(junit_xml("kill-one", verdict, seed=3, replay="again"))
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["availability", "durability", "stale-reads",
                                              "scenario"]
    assert {c.get("classname") for c in cases} == {"chaoslab.kill-one"}
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "1")
    assert cases[0].find("*") is None
    assert cases[1].find("failure").get("message") == "invalid: lost 1"
    assert cases[2].find("error") is not None
    assert "again" in cases[3].find("failure").text


def test_nemesis_steps_are_not_client_operations_in_a_synthetic_run_either():
    run = synthetic_run(operations=300, duration=16)
    nemesis = [o for o in run.history.ops if o.process == NEMESIS]
    assert nemesis and all(not o.is_client for o in nemesis)
    assert latency_summary(client_pairs(run.history))["operations"] == 300


def test_a_run_with_no_operation_at_all_still_gets_every_report(tmp_path):
    gate = Verdict("steady-state", Validity.UNKNOWN, "unhealthy baseline: no operation")
    write_report(result(history(), gate, schedule=()), str(tmp_path))
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert (journal["status"], journal["throughput"]["operations"]) == ("failed", 0)
    page = (tmp_path / "report.html").read_text()
    assert "<div id='timeline'" in page and "UNKNOWN" in page
