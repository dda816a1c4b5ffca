"""``chaoslab diff A B``: two runs' journals side by side; a path that is not a journal is
one line and exit code 2."""

from __future__ import annotations

import json

import pytest

from chaos.cli import main
from chaos.report.diff import DiffError, Row, compare, load_journal

pytestmark = pytest.mark.unit


def _journal(**changes) -> dict:
    j = {"chaoslab_journal": 1, "experiment": {"title": "kill-one"}, "seed": 1,
         "status": "completed", "deviated": False, "verdict": "valid", "duration": 20.0,
         "checks": {"availability": "valid", "linearizable": "valid"},
         "throughput": {"operations": 1000, "ok": 990, "fail": 10, "info": 0,
                        "ok_ratio": 0.99, "ok_per_s": 50.0},
         "latency_ms": {"p50": 2.0, "p99": 40.0},
         "failover": [{"fault": "kill", "target": "node-2", "failover_s": 0.5}]}
    j.update(changes)
    return j


def _row(rows: list[Row], section: str, metric: str) -> Row:
    return next(r for r in rows if (r.section, r.metric) == (section, metric))


def test_verdicts_throughput_latency_and_failover_side_by_side():
    b = _journal(seed=2, verdict="invalid", deviated=True,
                 checks={"availability": "valid", "linearizable": "invalid", "new": "valid"},
                 latency_ms={"p50": 2.0, "p99": 60.0},
                 failover=[{"fault": "kill", "target": "node-2", "failover_s": 1.5}])
    rows = compare(_journal(), b)
    assert _row(rows, "run", "seed") == Row("run", "seed", 1, 2, "changed")
    assert _row(rows, "checks", "availability").change == ""
    assert _row(rows, "checks", "linearizable") == Row("checks", "linearizable", "valid",
                                                       "invalid", "changed")
    assert _row(rows, "checks", "new").a is None
    assert _row(rows, "latency ms", "p99").change == "+20 (+50.0%)"
    assert _row(rows, "latency ms", "p50").change == ""
    assert _row(rows, "failover s", "kill node-2").change == "+1 (+200.0%)"


def test_a_run_directory_or_its_journal_file_is_read_and_anything_else_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "journal.json").write_text(json.dumps(_journal()))
    assert load_journal(tmp_path / "run")["seed"] == 1
    assert load_journal(tmp_path / "run" / "journal.json")["seed"] == 1
    (tmp_path / "other.json").write_text('{"verdict": "valid"}')
    (tmp_path / "broken.json").write_text("{")
    for bad, why in ((tmp_path, "no journal.json in this directory"),
                     (tmp_path / "missing", "no such file or directory"),
                     (tmp_path / "other.json", "not a chaoslab journal"),
                     (tmp_path / "broken.json", "not a readable JSON journal")):
        with pytest.raises(DiffError, match=why):
            load_journal(bad)


def test_the_command_prints_json_and_refuses_bad_paths_in_one_line(tmp_path, capsys):
    for name, seed in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "journal.json").write_text(json.dumps(_journal(seed=seed)))
    with pytest.raises(SystemExit) as done:
        main(["diff", str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    assert done.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"section": "run", "metric": "seed", "a": 1, "b": 2, "change": "changed"} in out["rows"]
    with pytest.raises(SystemExit) as done:
        main(["diff", str(tmp_path / "a"), str(tmp_path / "nowhere")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere: no such file or directory" in err
    with pytest.raises(SystemExit) as done:
        main(["diff", str(tmp_path / "a"), str(tmp_path / "b")])
    assert done.value.code == 0 and "linearizable" in capsys.readouterr().out
