"""Reports of a chaos run, written beside Locust's files in the run's directory:

- ``verdict.json``: the whole scenario value, the verdict tree, the replay command;
- ``history.jsonl``: every record; ``series.json``: what the system reported over the run;
- ``junit.xml``: one test case per checker and one for the scenario (:mod:`.junit`);
- ``journal.json``: the run in Chaos Toolkit's journal fields (:mod:`.journal`);
- ``report.html``: one self-contained page with the timeline, the checks and their
  evidence (:mod:`.html`, :mod:`.plots`, :mod:`.timeline`).

``chaoslab diff A B`` compares two runs' journals (:mod:`.diff`).
"""

from __future__ import annotations

import gc
import os
import time

import orjson

from chaos.report.html import render
from chaos.report.journal import journal
from chaos.report.junit import junit_xml
from chaos.report.timeline import client_pairs, latency_summary, timeline

__all__ = ["write_report", "ARTIFACTS", "LOCUST_FILES"]

ARTIFACTS = ("verdict.json", "journal.json", "history.jsonl", "series.json", "junit.xml")
LOCUST_FILES = ("locust.html", "locust_stats.csv", "locust_stats_history.csv",
                "locust_failures.csv", "locust_exceptions.csv", "locust.log")


def write_report(result, directory: str, *, replay: str | None = None) -> dict[str, str]:
    """Write every report of ``result`` (a :class:`chaos.scenario.RunResult`) into
    ``directory``; returns name -> path of what was written. Call it right after the run:
    the journal's wall-clock times count back from now."""
    collecting = gc.isenabled()
    gc.disable()  # ~1e6 short-lived objects; full collections would walk the whole history
    try:
        return _write(result, directory, replay)
    finally:
        if collecting:
            gc.enable()


def _write(result, directory: str, replay: str | None) -> dict[str, str]:
    ended_wall, now_mono = time.time(), time.monotonic()
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, name)
             for name in ("verdict.json", "history.jsonl", "junit.xml", "journal.json",
                          "report.html")}
    sc, history = result.scenario, result.history
    pairs, windows = client_pairs(history), history.fault_windows()  # read by every report
    replay = replay or f"chaoslab run --scenario-file {paths['verdict.json']}"
    recorded = {
        "scenario": sc.as_json(), "seed": sc.seed, "verdict": str(result.verdict.valid),
        "checks": result.verdict.as_json(), "replay": replay, "timings": dict(result.timings),
        "load": dict(result.load), "errors": list(result.errors),
        "faults": [{"step": w.step, "fault": w.fault, "target": w.target,
                    "start": round(w.start, 3), "end": round(w.end, 3)}
                   for w in windows],
    }
    _write_json(paths["verdict.json"], recorded, indent=True)
    history.dump(paths["history.jsonl"])
    if history.series:
        paths["series.json"] = os.path.join(directory, "series.json")
        _write_json(paths["series.json"], history.series)
    with open(paths["junit.xml"], "w") as fh:
        fh.write(junit_xml(sc.name, result.verdict, seed=sc.seed, replay=replay))

    # the history's t0 is on this host's monotonic clock; a history from elsewhere (or on a
    # fake clock) is placed so that it ends now
    last = max((op.time for op in history.ops), default=0.0)
    since_t0 = now_mono - history.t0
    if not last <= since_t0 <= last + float(result.timings.get("total_s", 0.0)) + 600:
        since_t0 = last
    summary = latency_summary(pairs, sc.workload.duration)
    _write_json(paths["journal.json"],
                journal(result, replay=replay, t0_wall=ended_wall - since_t0,
                        ended_wall=ended_wall, pairs=pairs, windows=windows,
                        summary=summary), indent=True)

    links = [n for n in (*ARTIFACTS, *LOCUST_FILES)
             if os.path.exists(os.path.join(directory, n))]
    page = render(result, replay=replay,
                  timeline=timeline(history, pairs=pairs, windows=windows),
                  summary=summary, links=links)
    with open(paths["report.html"], "w", encoding="utf-8") as fh:
        fh.write(page)
    return paths


def _write_json(path: str, value, *, indent: bool = False) -> None:
    option = orjson.OPT_INDENT_2 if indent else 0
    with open(path, "wb") as fh:
        fh.write(orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS, default=str))
