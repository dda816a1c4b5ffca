"""report.html in a real headless Chromium: BokehJS draws the timeline, with one shaded and
labelled window per fault of the schedule; a linearizability failure is drawn as lanes; the
page asks nothing of the network and logs no error. Each test saves a screenshot with its
artifacts.

The page's plots are the roots of one Bokeh document (``Bokeh.documents[0]``), found by
name (``timeline``, ``lanes``); what BokehJS drew is read from its views (``Bokeh.index``)
and from the pixels of their canvases, not from the HTML."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.report import write_report
from chaos.report.sample import synthetic_run
from chaos.wait import wait_for

VIEWS = """
function* walk(view) {  // a BokehJS view and every view under it
    yield view;
    if (typeof view.children === 'function') for (const child of view.children()) yield* walk(child);
}
function views(name) {  // the views of the root model ``name``, [] until BokehJS drew it
    if (!window.Bokeh || Bokeh.documents.length === 0) return [];
    const model = Bokeh.documents[0].get_model_by_name(name);
    const root = model && Bokeh.index[model.id];
    return root ? [...walk(root)] : [];
}
function shaded(view) {  // the share of points across a box, mid-height, that are not white
    const canvas = view.plot_view.canvas.primary.canvas;
    const scale = canvas.width / canvas.getBoundingClientRect().width;
    const ctx = canvas.getContext('2d'), box = view.bbox, y = (box.top + box.bottom) / 2;
    let hit = 0;
    for (let i = 1; i < 10; i++) {
        const [r, g, b] = ctx.getImageData((box.left + box.width * i / 10) * scale,
                                           y * scale, 1, 1).data;
        if (r + g + b < 3 * 250) hit++;
    }
    return hit / 9;
}
"""
RENDERED = VIEWS + """
// how many figures of the plot in #id (named ``name``) are drawn: 0 until all of them are
const [id, name] = arguments;
const host = document.getElementById(id);
if (host === null || !window.Bokeh || !Bokeh.documents[0].is_idle) return 0;
const drawn = views(name);  // [the root's view, ...every view under it]
if (drawn.length === 0 || !host.contains(drawn[0].el)) return 0;
const figures = drawn.filter(v => v.model.type === 'Figure');
const done = figures.filter(v => v.has_finished()
    && v.canvas.primary.canvas.width > 0 && v.canvas.primary.canvas.height > 0);
return done.length === figures.length ? done.length : 0;
"""
SCHEDULES = {
    1: ("kill:node-2@4+3",),
    3: ("kill:node-2@3+2", "partition:isolate:node-3@7+2", "pause:node-1@11+2"),
}


def open_report(browser, directory: Path, plot: str = "timeline", name: str = "timeline"
                ) -> int:
    """Open the report and wait until BokehJS has drawn the plot in ``#plot`` (the root
    model ``name``); returns how many figures it has."""
    browser.get((directory / "report.html").resolve().as_uri())
    wait_for(lambda: browser.execute_script(RENDERED, plot, name), timeout=30,
             description=f"BokehJS to draw the plot #{plot}")
    return browser.execute_script(RENDERED, plot, name)


def fault_shapes(browser) -> list[dict]:
    """The timeline's fault windows: each ``fault:<step>`` BoxAnnotation of the document,
    with its label, the width BokehJS drew it at, and how much of it is shaded."""
    return browser.execute_script(VIEWS + """
        const doc = Bokeh.documents[0], drawn = views('timeline');
        return [...doc.all_models]
            .filter(m => m.type === 'BoxAnnotation' && (m.name || '').startsWith('fault:'))
            .map(m => {
                const view = drawn.find(v => v.model === m);
                const label = doc.get_model_by_name('fault-label:' + m.name.slice(6));
                return {name: m.name, left: m.left, right: m.right,
                        label: label && label.text, width: view ? view.bbox.width : 0,
                        shaded: view ? shaded(view) : 0,
                        bands: [...doc.all_models].filter(
                            b => b.name === 'fault-band:' + m.name.slice(6)).length};
            });""")


def assert_offline_and_quiet(browser) -> None:
    remote = browser.execute_script("""
        return performance.getEntriesByType('resource').map(e => e.name)
            .filter(n => !n.startsWith('file:') && !n.startsWith('data:'));""")
    assert remote == []  # everything the page needs is in it
    logged = browser.get_log("browser")  # BokehJS's own warnings too (not Chromium's)
    errors = [e for e in logged if e["level"] == "SEVERE"
              or e["level"] == "WARNING" and e["source"] == "console-api"]
    assert errors == []


@pytest.mark.parametrize("faults", sorted(SCHEDULES))
def test_the_timeline_renders_with_a_shaded_window_per_fault(browser, shot, chaos_artifacts,
                                                            faults):
    run = synthetic_run(operations=3000, duration=16, schedule=SCHEDULES[faults], seed=faults)
    write_report(run, str(chaos_artifacts))
    assert open_report(browser, chaos_artifacts) == 4  # rows: ok/s, fail+info, latency, marks
    shapes = fault_shapes(browser)
    windows = run.history.fault_windows()
    assert len(shapes) == len(run.scenario.schedule.steps) == faults
    assert [s["name"] for s in shapes] == [f"fault:{w.step}" for w in windows]
    assert [s["label"] for s in shapes] == [f"{w.fault} {w.target}" for w in windows]
    assert [s["left"] for s in shapes] == [w.start for w in windows]
    assert all(s["bands"] == 3 for s in shapes)  # shaded in the three rows below too
    assert all(s["width"] > 5 for s in shapes)  # drawn on the page, not only in the figure
    assert all(s["shaded"] > 0.5 for s in shapes), shapes
    glyphs = browser.execute_script(VIEWS + """
        return [...new Set(views('timeline').filter(v => v.model.type === 'GlyphRenderer'
            && v.model.data_source.get_length() > 0).map(v => v.model.glyph.type))];""")
    assert {"Line", "VBar", "Scatter"} <= set(glyphs)  # ok/s and latency, fail/info, marks
    assert_offline_and_quiet(browser)
    shot(f"report-{faults}-faults", full_page=True)


def test_a_linearizability_failure_renders_as_lanes(browser, shot, chaos_artifacts):
    run = synthetic_run(operations=1500, duration=16, stale_read=True)
    lin = next(p for p in run.verdict.parts if p.name == "linearizable")
    assert str(lin.valid) == "invalid"
    write_report(run, str(chaos_artifacts))
    open_report(browser, chaos_artifacts)
    plot = browser.execute_script(
        "return document.querySelector('[id^=\"lanes-linearizable\"]').id")
    assert open_report(browser, chaos_artifacts, plot, "lanes") == 1
    lanes = browser.execute_script(
        "return Bokeh.documents[0].get_model_by_name('lanes').y_range.factors")
    assert {op["process"] for op in lin.evidence["window"]} <= set(lanes)
    drawn = browser.execute_script(VIEWS + """
        const lanes = views('lanes'), named = n => lanes.find(v => v.model.name === n);
        const bars = lanes.filter(v => v.model.type === 'GlyphRenderer'
            && v.model.glyph.type === 'HBar');
        const outline = bars.flatMap(v => Array.from(v.model.data_source.data.outline));
        return {no_order: named('no-order').model.location,
                window: named('window').bbox.width, shaded: shaded(named('window')),
                bars: bars.reduce((n, v) => n + v.model.data_source.get_length(), 0),
                culprits: outline.filter(w => w > 0).length,
                label: named('no-order-label').model.text};""")
    assert drawn["no_order"] == lin.evidence["window_end"]
    assert drawn["window"] > 5 and drawn["shaded"] > 0.5  # the window, shaded
    assert drawn["bars"] >= len(lin.evidence["window"])
    assert drawn["culprits"] == 1 and drawn["label"].startswith("no order")
    assert_offline_and_quiet(browser)
    browser.execute_script("document.getElementById(arguments[0]).scrollIntoView()", plot)
    shot("report-lanes")


def test_the_report_of_a_real_local_run_renders(browser, shot, chaos_run, chaos_artifacts):
    from chaos.catalog import SCENARIOS

    run = chaos_run(SCENARIOS["kill-one"].with_duration(6))
    open_report(browser, chaos_artifacts)
    shapes = fault_shapes(browser)
    assert len(shapes) == len(run.scenario.schedule.steps) == 1
    assert shapes[0]["width"] > 0 and shapes[0]["label"].startswith("kill ")
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('#artifacts a'), a => a.textContent)")
    assert {"locust.html", "locust_stats.csv", "journal.json"} <= set(links)
    shot("report-local-run", full_page=True)
