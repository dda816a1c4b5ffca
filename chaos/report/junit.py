"""``junit.xml``: one test suite per run, one test case per checker and one for the
scenario (its verdict, seed and replay command), so a CI shows each check on its own line.
An invalid check is a failure, an unknown one an error (never a pass)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson

from chaos.checkers.base import Verdict

__all__ = ["junit_xml"]


def junit_xml(suite: str, verdict: Verdict, *, seed: int, replay: str) -> str:
    """The JUnit XML of a run named ``suite`` whose (composite) verdict is ``verdict``."""
    checks = verdict.parts or (verdict,)
    cases = [_case(suite, c.name, c.valid, c.summary, c.evidence) for c in checks]
    cases.append(_case(suite, "scenario", verdict.valid, verdict.summary,
                       {"seed": seed, "replay": replay}))
    failures = sum(1 for c in (*checks, verdict) if c.valid == "invalid")
    errors = sum(1 for c in (*checks, verdict) if c.valid == "unknown")
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite '
            f'name={quoteattr("chaoslab." + suite)} tests="{len(cases)}" '
            f'failures="{failures}" errors="{errors}">{"".join(cases)}</testsuite>\n')


def _case(suite: str, name: str, valid, summary: str, evidence: Mapping[str, Any]) -> str:
    body = ""
    if valid != "valid":
        tag = "failure" if valid == "invalid" else "error"
        body = (f"<{tag} message={quoteattr(f'{valid}: {summary}')}>"
                f"{escape(orjson.dumps(dict(evidence), default=str).decode())}</{tag}>")
    return (f'<testcase classname={quoteattr("chaoslab." + suite)} '
            f'name={quoteattr(name)}>{body}</testcase>')
