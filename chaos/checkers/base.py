"""What every checker shares: the three-valued verdict, the protocol and the registry by name.

A checker is a small frozen value with a ``name`` and ``check(history, final) -> Verdict``. It
is pure (no I/O), and never raises: a checker that cannot decide says ``unknown`` with the
reason. ``final`` is what the final reads returned, key -> value (None: absent).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from chaos.history import History

__all__ = ["Validity", "Verdict", "Checker", "CHECKERS", "register", "make_checker",
           "compose", "Compose"]


class Validity(StrEnum):
    """valid, invalid, or unknown (could not decide: never counted as valid)."""

    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"

    @classmethod
    def combine(cls, states) -> Validity:
        """invalid if any is invalid, else unknown if any is unknown, else valid."""
        states = set(states)
        if cls.INVALID in states:
            return cls.INVALID
        if cls.UNKNOWN in states or not states:
            return cls.UNKNOWN
        return cls.VALID

    @property
    def exit_code(self) -> int:
        """The main job's exit code: 0 valid, 1 invalid, 2 unknown."""
        return {Validity.VALID: 0, Validity.INVALID: 1}.get(self, 2)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A checker's answer with the evidence that proves it; a composite keeps its parts."""

    name: str
    valid: Validity
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    parts: tuple[Verdict, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "valid", Validity(self.valid))

    @property
    def ok(self) -> bool:
        return self.valid is Validity.VALID

    def as_json(self) -> dict:
        out = {"name": self.name, "valid": str(self.valid), "summary": self.summary,
               "evidence": dict(self.evidence)}
        if self.parts:
            out["parts"] = [p.as_json() for p in self.parts]
        return out

    def explain(self) -> str:
        """A few lines a failing test can show: every part's verdict and summary."""
        lines = [f"{self.name}: {self.valid} - {self.summary}"]
        for p in self.parts:
            lines.append(f"  {p.name}: {p.valid} - {p.summary}")
        return "\n".join(lines)


@runtime_checkable
class Checker(Protocol):
    """A pure function of the history and the final reads, with a name: ``check`` returns a
    :class:`Verdict` and never raises."""

    name: str

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict: ...


CHECKERS: dict[str, type] = {}
C = TypeVar("C")


def register(name: str) -> Callable[[type[C]], type[C]]:
    """Class decorator: make a checker type choosable by ``name`` (scenarios, the CLI)."""
    def deco(cls: type[C]) -> type[C]:
        if name in CHECKERS:
            raise ValueError(f"checker {name!r} is registered twice")
        CHECKERS[name] = cls
        return cls
    return deco


def make_checker(spec: str | Checker, **options: Any) -> Checker:
    """A checker from its registered name (with options), or the checker itself."""
    if not isinstance(spec, str):
        return spec
    try:
        cls = CHECKERS[spec]
    except KeyError:
        raise ValueError(f"unknown checker {spec!r}: choose one of "
                         f"{', '.join(sorted(CHECKERS))}") from None
    return cls(**options)


@dataclass(frozen=True, slots=True)
class Compose:
    """Run every checker; the verdict is the worst of theirs (Jepsen's checker/compose)."""

    checkers: tuple[Checker, ...]
    name: str = "all"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        parts = []
        collecting = gc.isenabled()
        gc.disable()  # each checker makes ~1e5 tuples; full collections would walk the history
        try:
            for checker in self.checkers:
                try:
                    parts.append(checker.check(history, final))
                except Exception as exc:  # a checker bug is an unknown, not a crash of the run
                    parts.append(Verdict(getattr(checker, "name", type(checker).__name__),
                                         Validity.UNKNOWN, f"checker crashed: {exc!r}"))
        finally:
            if collecting:
                gc.enable()
        valid = Validity.combine(p.valid for p in parts)
        return Verdict(self.name, valid, "; ".join(f"{p.name}: {p.valid}" for p in parts),
                       parts=tuple(parts))


def compose(*checkers: Checker) -> Compose:
    """One checker that runs all of ``checkers`` (the worst verdict wins)."""
    return Compose(tuple(checkers))
