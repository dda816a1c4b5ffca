"""``chaoslab diff A B``: two runs' journals side by side.

Rows: the run (status, deviated, verdict, seed, duration), the verdict of every checker, the
client throughput, the latency percentiles of the ok operations, and the failover time of
each fault (paired by position in the schedule). Numbers get the change from A to B.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from chaos.report.journal import JOURNAL_VERSION

__all__ = ["DiffError", "Row", "load_journal", "compare", "as_json", "as_table"]

JOURNAL = "journal.json"


class DiffError(ValueError):
    """A path that is not a run's journal; one line saying what to give instead."""


@dataclass(frozen=True, slots=True)
class Row:
    section: str
    metric: str
    a: Any
    b: Any
    change: str = ""  # numbers: "+12 (+4.0%)"; values: "changed"; "" when the same


def load_journal(path: str | Path) -> dict:
    """The journal of a run directory, or a journal file itself."""
    p = Path(path)
    if p.is_dir():
        p = p / JOURNAL
        if not p.is_file():
            raise DiffError(f"{path}: no {JOURNAL} in this directory: give a run's artifacts "
                            "directory (e.g. reports/latest) or its journal.json")
    elif not p.is_file():
        raise DiffError(f"{path}: no such file or directory: give a run's artifacts directory "
                        "or its journal.json")
    try:
        data = orjson.loads(p.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise DiffError(f"{p}: not a readable JSON journal ({exc})") from None
    if not isinstance(data, dict) or data.get("chaoslab_journal") != JOURNAL_VERSION:
        raise DiffError(f"{p}: not a chaoslab journal (version {JOURNAL_VERSION}): "
                        "give the journal.json that `chaoslab run` writes")
    return data


def compare(a: dict, b: dict) -> list[Row]:
    """The rows comparing journal ``a`` with journal ``b``."""
    rows = [_value("run", "scenario", (a.get("experiment") or {}).get("title"),
                   (b.get("experiment") or {}).get("title"))]
    rows += [_value("run", key, a.get(key), b.get(key))
             for key in ("seed", "status", "deviated", "verdict")]
    rows.append(_number("run", "duration s", a.get("duration"), b.get("duration")))
    checks_a, checks_b = a.get("checks") or {}, b.get("checks") or {}
    for name in dict.fromkeys([*checks_a, *checks_b]):
        rows.append(_value("checks", name, checks_a.get(name), checks_b.get(name)))
    ta, tb = a.get("throughput") or {}, b.get("throughput") or {}
    for key in ("operations", "ok", "fail", "info", "ok_ratio", "ok_per_s"):
        rows.append(_number("throughput", key.replace("_", " "), ta.get(key), tb.get(key)))
    la, lb = a.get("latency_ms") or {}, b.get("latency_ms") or {}
    for key in dict.fromkeys([*la, *lb]):
        rows.append(_number("latency ms", key, la.get(key), lb.get(key)))
    fa, fb = a.get("failover") or [], b.get("failover") or []
    for i in range(max(len(fa), len(fb))):
        ra = fa[i] if i < len(fa) else {}
        rb = fb[i] if i < len(fb) else {}
        names = dict.fromkeys(filter(None, (_fault(ra), _fault(rb))))
        rows.append(_number("failover s", " / ".join(names) or f"fault {i + 1}",
                            ra.get("failover_s"), rb.get("failover_s")))
    return rows


def as_json(rows: list[Row], a: str, b: str) -> dict:
    return {"a": a, "b": b, "rows": [asdict(r) for r in rows]}


def as_table(rows: list[Row], a: str, b: str):
    """A Rich table of the rows; changed verdicts in colour."""
    from rich.table import Table

    table = Table("", "metric", f"A: {a}", f"B: {b}", "change", title="chaoslab diff")
    section = None
    for r in rows:
        style = ""
        if r.section == "checks" and r.change:
            style = "bold red" if r.b == "invalid" else "bold yellow"
        table.add_row(r.section if r.section != section else "", r.metric, _show(r.a),
                      _show(r.b), f"[{style}]{r.change}[/]" if style else r.change)
        section = r.section
    return table


def _value(section: str, metric: str, a: Any, b: Any) -> Row:
    return Row(section, metric, a, b, "" if a == b else "changed")


def _number(section: str, metric: str, a: Any, b: Any) -> Row:
    if not _is_number(a) or not _is_number(b):
        return _value(section, metric, a, b)
    delta = b - a
    if delta == 0:
        return Row(section, metric, a, b, "")
    relative = f" ({delta / a:+.1%})" if a else ""
    return Row(section, metric, a, b, f"{delta:+.4g}{relative}")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _fault(row: dict) -> str:
    return " ".join(str(row[k]) for k in ("fault", "target") if row.get(k))


def _show(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)
