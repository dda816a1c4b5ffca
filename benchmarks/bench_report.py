"""Cost of the run report on this machine: prints figures, asserts nothing.

    python benchmarks/bench_report.py [--ops 100000] [--seed 1] [--no-browser]

1. A synthesized run (:func:`chaos.report.sample.synthetic_run`): ``--ops`` client
   operations by 16 processes on 200 keys over 120 s, with a kill and a partition, and the
   checkers' verdict on it (availability, failover, linearizable: timed apart, they are not
   the report's cost).
2. ``write_report`` on it (every artifact: verdict.json, history.jsonl, junit.xml,
   journal.json, report.html), against the 5 s the issue asks for; beside it the table
   report it replaced (``chaos/report.py`` at git HEAD, when git still has it), and what
   importing ``chaos.report`` (Bokeh) costs a fresh interpreter, paid once per process.
3. The size of report.html, and how much of it is BokehJS (inlined once).
4. Opening it in headless Chromium (Debian's chromium + chromium-driver) until BokehJS
   has drawn every row of the timeline, against 3 s, and when the page's text was first
   painted (BokehJS comes last in the page): in a fresh browser (cold: BokehJS is compiled
   for the first time), then again in the same browser (warm).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chaos.report import write_report
from chaos.report.sample import synthetic_run
from chaos.wait import wait_for

WRITE_S, OPEN_S = 5.0, 3.0
SCHEDULE = ("kill:node-2@30+20", "partition:isolate:node-3@70+20")
RENDERED = """
function* walk(view) {
    yield view;
    if (typeof view.children === 'function') for (const child of view.children()) yield* walk(child);
}
if (!window.Bokeh || Bokeh.documents.length === 0 || !Bokeh.documents[0].is_idle) return false;
const root = Bokeh.index[Bokeh.documents[0].get_model_by_name('timeline').id];
const figures = root ? [...walk(root)].filter(v => v.model.type === 'Figure') : [];
return figures.length > 0 && figures.every(v => v.has_finished()
    && v.canvas.primary.canvas.width > 0);
"""
BOKEHJS = ("/* BEGIN bokeh.min.js */", "/* END bokeh.min.js */")


def old_report():
    """The table report this package replaced, from git, or None."""
    root = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(["git", "show", "HEAD:chaos/report.py"], cwd=root,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("old_report", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, "old chaos/report.py", "exec"), module.__dict__)  # noqa: S102
    return module


def import_seconds() -> float | None:
    """Seconds a fresh interpreter takes to import chaos.report (and with it Bokeh)."""
    code = ("import time; t = time.perf_counter(); import chaos.report.html; "
            "print(time.perf_counter() - t)")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return float(out)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def open_in_chromium(page: Path, times: int = 2) -> list[tuple[float, float]]:
    """(seconds until the timeline is drawn, until the page's text was first painted) for
    each of ``times`` opens in one fresh headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"),
                              options=options)
    seconds = []
    try:
        for _ in range(times):
            driver.get("about:blank")
            started = time.perf_counter()
            driver.get(page.resolve().as_uri())
            wait_for(lambda: driver.execute_script(RENDERED), timeout=60, interval=0.01,
                     description="the timeline to render")
            drawn = time.perf_counter() - started
            paint = driver.execute_script(
                "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                "return p ? p.startTime : null;")
            seconds.append((drawn, (paint or 0.0) / 1000))
    finally:
        driver.quit()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    took, run = timed(synthetic_run, operations=args.ops, keys=200, processes=16,
                      duration=120.0, schedule=SCHEDULE, seed=args.seed,
                      checkers=("availability", "failover", "linearizable"))
    print(f"run: {args.ops} operations, {len(run.history)} records, "
          f"{len(run.history.fault_windows())} faults; synthesized and checked in {took:.2f}s "
          f"({run.verdict.summary})")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "new"
        took, _ = timed(write_report, run, str(out))
        verdict = "ok" if took < WRITE_S else "OVER"
        print(f"write_report (all artifacts):    {took:6.2f}s  target {WRITE_S:g}s  {verdict}")
        old = old_report()
        if old is not None:
            old_took, _ = timed(old.write_report, run, str(Path(tmp) / "old"))
            print(f"old table report (baseline):     {old_took:6.2f}s")
        imported = import_seconds()
        if imported is not None:
            print(f"import chaos.report (Bokeh), fresh interpreter: {imported:6.2f}s")
        page = out / "report.html"
        text = page.read_bytes()
        size = len(text)
        js = text.index(BOKEHJS[1].encode()) - text.index(BOKEHJS[0].encode())
        print(f"report.html: {size / 1e6:.2f} MB, of which BokehJS {js / 1e6:.2f} MB "
              f"and the rest {(size - js) / 1e3:.0f} kB")
        for name in ("history.jsonl", "journal.json", "verdict.json"):
            print(f"{name}: {(out / name).stat().st_size / 1e6:.2f} MB")
        if args.no_browser:
            return
        try:
            cold, warm = open_in_chromium(page)
        except Exception as exc:  # no browser here: say so, the other figures stand
            print(f"browser: not measured ({type(exc).__name__}: {exc})", file=sys.stderr)
            return
        for label, (seconds, paint) in (("cold (fresh browser)", cold),
                                        ("warm (same browser)", warm)):
            verdict = "ok" if seconds < OPEN_S else "OVER"
            print(f"open in Chromium, {label:21s} {seconds:6.2f}s  target {OPEN_S:g}s  "
                  f"{verdict}  (text painted at {paint:.2f}s)")


if __name__ == "__main__":
    main()
