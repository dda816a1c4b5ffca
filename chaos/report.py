"""Reports of a chaos run: ``verdict.json``, ``history.jsonl``, ``junit.xml`` and ``report.html``."""

from __future__ import annotations

import html
import os
from xml.sax.saxutils import escape

import orjson

__all__ = ["write_report"]


def _throughput(result, bucket: float = 1.0) -> list[tuple[float, int, int]]:
    """(second, ok, not ok) per bucket of the run."""
    rows: dict[int, list[int]] = {}
    for _, comp in result.history.completions():
        b = rows.setdefault(int(comp.time // bucket), [0, 0])
        b[0 if comp.type == "ok" else 1] += 1
    return [(k * bucket, v[0], v[1]) for k, v in sorted(rows.items())]


def write_report(result, directory: str) -> dict[str, str]:
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, name)
             for name in ("verdict.json", "history.jsonl", "junit.xml", "report.html")}
    sc = result.scenario
    summary = {
        "scenario": sc.name, "seed": result.seed, "verdict": result.verdict.valid,
        "checks": [v for v in result.verdict.evidence.values()], "timings": result.timings,
        "cluster": {"nodes": sc.cluster.nodes, "n": sc.cluster.settings.n,
                    "w": sc.cluster.settings.w, "r": sc.cluster.settings.r,
                    "storage": sc.cluster.storage, "mesh": sc.cluster.mesh},
        "fault": {"kind": sc.fault, "target": sc.target, "at": sc.fault_at, "heal_at": sc.heal_at},
    }
    with open(paths["verdict.json"], "wb") as fh:
        fh.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    result.history.dump(paths["history.jsonl"])

    checks = result.verdict.evidence.values()
    cases = []
    for c in checks:
        body = "" if c["valid"] == "valid" else (
            f'<failure message="{escape(c["summary"], {chr(34): "&quot;"})}">'
            f'{escape(orjson.dumps(c["evidence"]).decode())}</failure>')
        cases.append(f'<testcase classname="chaoslab.{sc.name}" name="{c["name"]}">{body}</testcase>')
    failures = sum(1 for c in checks if c["valid"] != "valid")
    with open(paths["junit.xml"], "w") as fh:
        fh.write(f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="chaoslab" '
                 f'tests="{len(cases)}" failures="{failures}">{"".join(cases)}</testsuite>\n')

    rows = "".join(f"<tr><td>{t:.0f}</td><td>{ok}</td><td>{bad}</td><td>"
                   f"<div style='background:#4a4;width:{ok // 4}px;height:8px;display:inline-block'>"
                   f"</div><div style='background:#c33;width:{bad * 2}px;height:8px;"
                   f"display:inline-block'></div></td></tr>"
                   for t, ok, bad in _throughput(result))
    check_rows = "".join(f"<tr><td>{html.escape(c['name'])}</td><td>{c['valid']}</td>"
                         f"<td>{html.escape(c['summary'])}</td></tr>" for c in checks)
    nemesis = "".join(f"<li>{op.time:.2f}s {op.type} {html.escape(op.f)} {html.escape(str(op.key))}</li>"
                      for op in result.history.ops if op.process == "nemesis")
    with open(paths["report.html"], "w") as fh:
        fh.write(f"""<!doctype html><meta charset="utf-8"><title>chaoslab: {sc.name}</title>
<body style="font-family:sans-serif"><h1>{sc.name}: {result.verdict.valid.upper()}</h1>
<p>seed {result.seed} &middot; replay with <code>chaoslab run --seed {result.seed}</code></p>
<h2>Checks</h2><table border=1 cellpadding=4>{check_rows}</table>
<h2>Faults</h2><ul>{nemesis}</ul>
<h2>Operations per second</h2><table border=1 cellpadding=2><tr><th>s</th><th>ok</th>
<th>failed/unknown</th><th></th></tr>{rows}</table></body>""")
    return paths
