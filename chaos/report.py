"""Reports of a chaos run: ``verdict.json`` (the whole scenario value, the verdict tree, the
replay command), ``history.jsonl``, ``junit.xml`` (one test case per checker and one for the
scenario) and ``report.html``. Locust's CSV and HTML files sit beside them."""

from __future__ import annotations

import html
import os
from xml.sax.saxutils import escape, quoteattr

import orjson

from chaos.history import OpType

__all__ = ["write_report"]


def _throughput(history, bucket: float = 1.0) -> list[tuple[float, int, int, int]]:
    """(second, ok, fail, info) per bucket: client operations only (faults are not failures)."""
    rows: dict[int, list[int]] = {}
    for inv, comp in history.completions():
        if not inv.is_client:
            continue
        b = rows.setdefault(int(comp.time // bucket), [0, 0, 0])
        b[{OpType.OK: 0, OpType.FAIL: 1}.get(comp.type, 2)] += 1
    return [(k * bucket, *v) for k, v in sorted(rows.items())]


def write_report(result, directory: str, *, replay: str | None = None) -> dict[str, str]:
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, name)
             for name in ("verdict.json", "history.jsonl", "junit.xml", "report.html")}
    sc = result.scenario
    replay = replay or f"chaoslab run --scenario-file {paths['verdict.json']}"
    summary = {
        "scenario": sc.as_json(), "seed": sc.seed, "verdict": str(result.verdict.valid),
        "checks": result.verdict.as_json(), "replay": replay, "timings": dict(result.timings),
        "load": dict(result.load), "errors": list(result.errors),
        "faults": [{"step": w.step, "fault": w.fault, "target": w.target,
                    "start": round(w.start, 3), "end": round(w.end, 3)}
                   for w in result.history.fault_windows()],
    }
    with open(paths["verdict.json"], "wb") as fh:
        fh.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    result.history.dump(paths["history.jsonl"])
    if result.history.series:
        with open(os.path.join(directory, "series.json"), "wb") as fh:
            fh.write(orjson.dumps(result.history.series))

    checks = result.verdict.parts or (result.verdict,)
    cases = [_case(sc.name, c.name, c.valid, c.summary, c.evidence) for c in checks]
    cases.append(_case(sc.name, "scenario", result.verdict.valid, result.verdict.summary,
                       {"seed": sc.seed, "replay": replay}))
    failures = sum(1 for c in (*checks, result.verdict) if c.valid == "invalid")
    errors = sum(1 for c in (*checks, result.verdict) if c.valid == "unknown")
    with open(paths["junit.xml"], "w") as fh:
        fh.write(f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("chaoslab." + sc.name)} '
                 f'tests="{len(cases)}" failures="{failures}" errors="{errors}">'
                 f'{"".join(cases)}</testsuite>\n')

    rows = "".join(f"<tr><td>{t:.0f}</td><td>{ok}</td><td>{fail}</td><td>{info}</td><td>"
                   f"<div style='background:#4a4;width:{ok // 4}px;height:8px;display:inline-block'>"
                   f"</div><div style='background:#c33;width:{fail * 2}px;height:8px;"
                   f"display:inline-block'></div><div style='background:#d90;width:{info * 2}px;"
                   f"height:8px;display:inline-block'></div></td></tr>"
                   for t, ok, fail, info in _throughput(result.history))
    check_rows = "".join(f"<tr><td>{html.escape(c.name)}</td><td>{c.valid}</td>"
                         f"<td>{html.escape(c.summary)}</td></tr>" for c in checks)
    faults = "".join(f"<li>{f['start']:.2f}s - {f['end']:.2f}s: {html.escape(f['fault'])} "
                     f"{html.escape(str(f['target'] or ''))}</li>" for f in summary["faults"])
    with open(paths["report.html"], "w") as fh:
        fh.write(f"""<!doctype html><meta charset="utf-8"><title>chaoslab: {html.escape(sc.name)}</title>
<body style="font-family:sans-serif"><h1>{html.escape(sc.name)}: {str(result.verdict.valid).upper()}</h1>
<p>{html.escape(sc.description)}</p>
<p>seed {sc.seed} &middot; replay with <code>{html.escape(replay)}</code></p>
<h2>Checks</h2><table border=1 cellpadding=4>{check_rows}</table>
<h2>Faults</h2><ul>{faults or "<li>none</li>"}</ul>
<h2>Client operations per second</h2><table border=1 cellpadding=2><tr><th>s</th><th>ok</th>
<th>fail</th><th>info (unknown)</th><th></th></tr>{rows}</table>
<h2>Scenario</h2><pre>{html.escape(orjson.dumps(sc.as_json(), option=orjson.OPT_INDENT_2).decode())}</pre>
<p>Locust: <a href="locust.html">locust.html</a>, <a href="locust_stats.csv">locust_stats.csv</a></p>
</body>""")
    return paths


def _case(suite: str, name: str, valid, summary: str, evidence) -> str:
    body = ""
    if valid != "valid":
        tag = "failure" if valid == "invalid" else "error"
        body = (f"<{tag} message={quoteattr(f'{valid}: {summary}')}>"
                f"{escape(orjson.dumps(dict(evidence), default=str).decode())}</{tag}>")
    return f'<testcase classname={quoteattr("chaoslab." + suite)} name={quoteattr(name)}>{body}</testcase>'
