"""``journal.json``: the run as a journal, in Chaos Toolkit's field names where they fit.

Chaos Toolkit's fields and what they hold here:

- ``status``: ``completed`` (the schedule ran and the checkers judged it), ``failed`` (the
  steady state before was not met, or a fault could not be applied or undone: nothing, or
  not what was planned, was tested) or ``aborted`` (the run stopped before every step of the
  schedule was applied);
- ``deviated``: a checker found the system invalid (the steady state after was not met);
- ``steady_states.before``: the steady-state gate (healthy traffic before any fault);
  ``after``: the checkers, run over the whole history once the traffic ended; ``during``:
  per fault window, what the clients saw inside it (outcomes and latency: observed, not
  judged: the checkers judge it after);
- ``run``: one action per fault step (its apply), ``rollbacks``: its undo, each with status
  (``succeeded`` / ``failed`` / ``pending``: never completed), start, end and duration;
- ``start`` / ``end`` / ``duration``: of the whole run, wall clock (ISO 8601, UTC).

chaoslab's own fields: ``seed``, ``replay``, ``scenario`` (the whole value), ``verdict`` and
``checks`` (checker -> valid / invalid / unknown), ``throughput`` (client operations by
outcome, ok per second), ``latency_ms`` (percentiles of the ok operations), ``failover``
(per fault, from the failover checker's evidence), ``load``, ``timings`` and ``errors``.
Times inside the run are also given as ``t_start`` / ``t_end``: seconds since the traffic
started, the history's own axis.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from chaos.checkers.base import Validity, Verdict
from chaos.history import FaultWindow, History, Op, OpType
from chaos.report.timeline import client_pairs, latency_summary, percentile

__all__ = ["journal", "GATE", "JOURNAL_VERSION"]

GATE = "steady-state"  # the name of the steady-state gate's verdict (chaos.scenario)
JOURNAL_VERSION = 1


def journal(result: Any, *, replay: str, t0_wall: float, ended_wall: float,
            pairs: Sequence[tuple[Op, Op]] | None = None,
            windows: Sequence[FaultWindow] | None = None, summary: dict | None = None
            ) -> dict:
    """The journal of ``result`` (a :class:`chaos.scenario.RunResult`). ``t0_wall``: the
    wall-clock time of the history's t0; ``ended_wall``: when the run ended; ``pairs``,
    ``windows``, ``summary``: the history's client pairs, fault windows and
    :func:`latency_summary` over the traffic's duration, when already at hand."""
    sc, history, verdict = result.scenario, result.history, result.verdict
    parts = verdict.parts or (verdict,)
    gate = next((p for p in parts if p.name == GATE), None)
    checks = [p for p in parts if p.name != GATE]
    gate_failed = gate is not None and not gate.ok
    run, rollbacks = _activities(history, t0_wall)
    pairs = client_pairs(history) if pairs is None else pairs
    windows = history.fault_windows() if windows is None else windows
    steps = len(sc.schedule.steps)
    if gate_failed:
        checks = []  # nothing ran after the gate: the composite holds only the gate
    if gate_failed or result.errors or any(a["status"] == "failed" for a in run + rollbacks):
        status = "failed"
    elif len(run) < steps:
        status = "aborted"
    else:
        status = "completed"
    after = _steady(checks) if checks else None
    duration = float(result.timings.get("total_s", 0.0))
    if summary is None:
        summary = latency_summary(pairs, sc.workload.duration)
    return {
        "chaoslab_journal": JOURNAL_VERSION,
        "experiment": {"title": sc.name, "description": sc.description},
        "status": status,
        "deviated": bool(after is not None and after["steady_state_met"] is False),
        "start": _iso(ended_wall - duration), "end": _iso(ended_wall),
        "duration": round(duration, 3),
        "steady_states": {"before": _steady([gate]) if gate is not None else None,
                          "during": _during(windows, pairs, t0_wall),
                          "after": after},
        "run": run,
        "rollbacks": rollbacks,
        "seed": sc.seed,
        "replay": replay,
        "verdict": str(verdict.valid),
        "checks": {p.name: str(p.valid) for p in parts},
        "throughput": {k: summary[k] for k in ("operations", "ok", "fail", "info",
                                               "interrupted", "ok_ratio", "duration_s",
                                               "ok_per_s")},
        "latency_ms": summary["latency_ms"],
        "failover": failover_times(parts),
        "scenario": sc.as_json(),
        "load": dict(result.load),
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "errors": list(result.errors),
    }


def failover_times(parts) -> list[dict]:
    """Per fault on a node, the failover time the failover checker measured (none without
    that checker)."""
    out = []
    for part in parts:
        if part.name != "failover":
            continue
        for row in part.evidence.get("faults", ()):
            out.append({"fault": row.get("fault"), "target": row.get("target"),
                        "failover_s": row.get("failover_s"), "outage_of": row.get("outage_of"),
                        "problem": row.get("problem")})
    return out


def _steady(verdicts: list[Verdict]) -> dict:
    """A steady state in Chaos Toolkit's shape: met (None: undecided), and a probe per
    verdict with its tolerance met or not."""
    met = Validity.combine(v.valid for v in verdicts)
    return {
        "steady_state_met": {Validity.VALID: True, Validity.INVALID: False}.get(met),
        "probes": [{"activity": {"type": "probe", "name": v.name},
                    "status": "succeeded" if v.valid is not Validity.UNKNOWN else "failed",
                    "tolerance_met": v.ok,
                    "output": {"valid": str(v.valid), "summary": v.summary,
                               "evidence": dict(v.evidence)}}
                   for v in verdicts],
    }


def _activities(history: History, t0_wall: float) -> tuple[list[dict], list[dict]]:
    """Each fault step's apply (``run``) and undo (``rollbacks``), from the nemesis's
    records: an invocation, then ok or fail, with ``{"step", "phase"}`` as the value."""
    begun: dict[tuple[Any, str], Any] = {}
    done: dict[tuple[Any, str], Any] = {}
    for op in history.nemesis_ops():
        if not isinstance(op.value, dict):
            continue
        key = (op.value.get("step"), op.value.get("phase"))
        if op.type is OpType.INVOKE:
            begun.setdefault(key, op)
        else:
            done.setdefault(key, op)
    run, rollbacks = [], []
    for (step, phase), inv in sorted(begun.items(), key=lambda kv: kv[1].time):
        comp = done.get((step, phase))
        name = inv.value.get("fault") or (f"{inv.f} {inv.key}" if inv.key else inv.f)
        record = {"activity": {"type": "action", "name": name if phase == "apply"
                               else f"undo {name}", "fault": inv.f, "target": inv.key,
                               "step": step},
                  "status": ("pending" if comp is None else
                             "succeeded" if comp.type is OpType.OK else "failed"),
                  "start": _iso(t0_wall + inv.time), "t_start": round(inv.time, 3)}
        if comp is not None:
            record.update(end=_iso(t0_wall + comp.time), t_end=round(comp.time, 3),
                          duration=round(comp.time - inv.time, 3))
            if comp.error:
                record["exception"] = comp.error
        (run if phase == "apply" else rollbacks).append(record)
    return run, rollbacks


def _during(windows: Sequence[FaultWindow], pairs: Sequence[tuple[Op, Op]],
            t0_wall: float) -> list[dict]:
    """Per fault window: the client operations that completed inside it, by outcome."""
    pairs = sorted(pairs, key=lambda pair: pair[1].time)
    ends = [comp.time for _, comp in pairs]
    out = []
    for w in windows:
        counts = {"ok": 0, "fail": 0, "info": 0}
        latencies = []
        for inv, comp in pairs[bisect_left(ends, w.start):bisect_right(ends, w.end)]:
            if comp.interrupted:
                continue
            counts[str(comp.type)] += 1
            if comp.type is OpType.OK:
                latencies.append((comp.time - inv.time) * 1000)
        latencies.sort()
        judged = sum(counts.values())
        out.append({"activity": f"{w.fault} {w.target}" if w.target else w.fault,
                    "step": w.step, "start": _iso(t0_wall + w.start),
                    "end": _iso(t0_wall + w.end), "t_start": round(w.start, 3),
                    "t_end": round(w.end, 3), **counts,
                    "ok_ratio": round(counts["ok"] / judged, 5) if judged else None,
                    "latency_ms": {"p50": _r(percentile(latencies, 50)),
                                   "p99": _r(percentile(latencies, 99))}})
    return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()
