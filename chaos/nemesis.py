"""The nemesis: a schedule of timed faults, applied to one cluster and always healed.

A :class:`Schedule` is a plain value, a tuple of :class:`Step` (``at`` seconds after the
traffic starts, a fault, and how long it lasts); steps may overlap unless they hold the same
resource (the same process, the same link). :class:`Nemesis` applies faults to a runtime,
records each apply and heal in the run's history (process ``nemesis``), and undoes every
applied fault exactly once, in reverse order, also when the run fails or is interrupted.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chaos.faults.base import FAULTS, Fault, FaultError, parse_fault
from chaos.history import NEMESIS, History
from chaos.topology import Link, Topology

__all__ = ["Step", "Schedule", "ScheduleError", "Nemesis", "step_record"]

log = logging.getLogger("chaoslab.nemesis")


class ScheduleError(ValueError):
    """A schedule that cannot run as written; one line naming the step and the problem."""


@dataclass(frozen=True, slots=True)
class Step:
    """One fault, applied ``at`` seconds after the traffic starts, healed ``duration`` later."""

    fault: Fault
    at: float  # seconds after the traffic starts
    duration: float = 0.0  # how long the fault stays before it is healed

    @property
    def end(self) -> float:
        return self.at + self.duration

    @classmethod
    def from_json(cls, data: dict) -> Step:
        """The inverse of :meth:`as_json`: a recorded step, to replay."""
        kind = data["kind"]
        try:
            fault_cls = FAULTS[kind]
        except KeyError:
            raise ScheduleError(f"unknown fault {kind!r} in the recorded schedule") from None
        spec = {}
        for name, value in data["spec"].items():
            if name in ("cut", "via"):
                value = frozenset(Link.parse(v) for v in value)
            elif isinstance(value, list):
                value = tuple(value)
            spec[name] = value
        return cls(fault_cls(**spec), float(data["at"]), float(data["duration"]))

    def as_json(self) -> dict:
        return {"fault": self.fault.describe(), "kind": self.fault.kind, "at": self.at,
                "duration": self.duration, "spec": _spec(self.fault)}


def _spec(fault: Fault) -> dict:
    out = {}
    for f in dataclasses.fields(fault):
        if f.name.startswith("_"):
            continue
        value = getattr(fault, f.name)
        if isinstance(value, frozenset):
            value = sorted(v.name if isinstance(v, Link) else str(v) for v in value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


@dataclass(frozen=True, slots=True)
class Schedule:
    """Timed steps, possibly overlapping (unless they hold the same resource)."""

    steps: tuple[Step, ...] = ()

    @classmethod
    def single(cls, fault: Fault, *, at: float, heal: float | None = None,
               duration: float | None = None) -> Schedule:
        """One fault at ``at``, healed at ``heal`` (or after ``duration``)."""
        if heal is not None and duration is not None:
            raise ScheduleError("give heal or duration, not both")
        length = duration if duration is not None else (heal - at if heal is not None else 0.0)
        return cls((Step(fault, at, length),))

    @classmethod
    def of(cls, *steps: tuple[Fault, float, float] | Step) -> Schedule:
        """``Schedule.of((Kill("node-1"), 2, 3), (Pause("node-2"), 4, 1))``."""
        return cls(tuple(s if isinstance(s, Step) else Step(*s) for s in steps))

    @classmethod
    def parse(cls, texts: Iterable[str], *, at: float, duration: float) -> Schedule:
        """Steps from their written form ``FAULT[@AT][+DURATION]``, e.g. ``kill:node-1@3+4``
        (``at`` and ``duration`` are the defaults)."""
        steps = []
        for text in texts:
            spec, timing = text, ""
            for sep in ("@", "+"):
                if sep in spec:
                    spec, _, rest = spec.partition(sep)
                    timing = sep + rest + timing
            step_at, step_duration = at, duration
            try:
                if timing.startswith("@"):
                    when, _, length = timing[1:].partition("+")
                    step_at = float(when)
                    if length:
                        step_duration = float(length)
                elif timing.startswith("+"):
                    step_duration = float(timing[1:])
            except ValueError:
                raise ScheduleError(f"bad timing in {text!r}: write FAULT@AT+DURATION in "
                                    f"seconds, e.g. kill:node-1@3+4") from None
            steps.append(Step(parse_fault(spec), step_at, step_duration))
        return cls(tuple(steps))

    @property
    def span(self) -> float:
        """When the last step is healed."""
        return max((s.end for s in self.steps), default=0.0)

    @property
    def start(self) -> float:
        return min((s.at for s in self.steps), default=0.0)

    def bind(self, topology: Topology, rng: random.Random) -> Schedule:
        """Every fault's targets checked and its plan computed (pure), then the schedule
        checked: see :meth:`validate`."""
        bound = Schedule(tuple(dataclasses.replace(s, fault=s.fault.bind(topology, rng))
                               for s in self.steps))
        bound.validate()
        return bound

    def validate(self) -> None:
        for i, s in enumerate(self.steps, 1):
            if s.at < 0:
                raise ScheduleError(f"step {i} ({s.fault.describe()}) starts at {s.at}s: "
                                    "times count from the start of traffic and must be >= 0")
            if s.duration < 0:
                raise ScheduleError(f"step {i} ({s.fault.describe()}) heals before it applies "
                                    f"(duration {s.duration}s)")
        for i, a in enumerate(self.steps, 1):
            for j, b in enumerate(self.steps[i:], i + 1):
                overlap = a.at < b.end and b.at < a.end or a.at == b.at
                shared = a.fault.resources() & b.fault.resources()
                if overlap and shared:
                    raise ScheduleError(
                        f"steps {i} ({a.fault.describe()}) and {j} ({b.fault.describe()}) "
                        f"overlap on {sorted(shared)[0]}: they cannot be active together")

    def as_json(self) -> list[dict]:
        return [s.as_json() for s in self.steps]

    @classmethod
    def from_json(cls, data: list[dict]) -> Schedule:
        return cls(tuple(Step.from_json(d) for d in data))


@dataclass
class _Applied:
    fault: Fault
    step: int
    healed: bool = False


def step_record(fault: Fault, step: int, phase: str) -> tuple[str | None, dict]:
    """The key and value of a fault's records in the history: its targets (``+``-joined;
    None for the whole cluster), and the step, the phase and what the fault is."""
    return "+".join(fault.targets()) or None, {"step": step, "phase": phase,
                                               "fault": fault.describe()}


class Nemesis:
    """Breaks one runtime on purpose and puts it back.

    ``apply(fault)`` binds the fault to the topology, applies it and records it; ``heal()``
    undoes every fault still applied, newest first, each exactly once; ``run(schedule)`` does
    both on time. As a context manager (or the pytest fixture) it heals on the way out,
    whatever happened. Errors of an apply or undo are recorded (and kept in ``errors``), and
    the remaining faults are still healed."""

    def __init__(self, runtime: Any, history: History | None = None, *,
                 topology: Topology | None = None, rng: random.Random | None = None,
                 on_event: Callable[[str], None] | None = None) -> None:
        self.runtime = runtime
        self.history = history if history is not None else History()
        self.topology = topology or Topology(tuple(runtime.node_ids()))
        self.rng = rng or random.Random(0)
        self.on_event = on_event or (lambda message: log.info("%s", message))
        self.applied: list[_Applied] = []
        self.errors: list[str] = []
        self._lock = threading.RLock()

    def _record(self, fault: Fault, step: int, phase: str, action: Callable[[], None]) -> bool:
        target, value = step_record(fault, step, phase)
        self.history.add(NEMESIS, "invoke", fault.kind, target, value)
        try:
            action()
        except Exception as exc:  # recorded; the run decides what it means
            message = f"{phase} {fault.describe()}: {type(exc).__name__}: {exc}"
            self.errors.append(message)
            self.history.add(NEMESIS, "fail", fault.kind, target, value, error=str(exc)[:300])
            log.warning("nemesis: %s", message)
            return False
        self.history.add(NEMESIS, "ok", fault.kind, target, value)
        self.on_event(f"{'applied' if phase == 'apply' else 'healed'} {fault.describe()}")
        return True

    def apply(self, fault: Fault | str, *, step: int | None = None) -> Fault:
        """Apply a fault now (a value, or its written form like ``"kill:node-1"``)."""
        fault = parse_fault(fault) if isinstance(fault, str) else fault
        fault = fault.bind(self.topology, self.rng)
        with self._lock:
            busy = set().union(*(a.fault.resources() for a in self.applied if not a.healed))
            clash = fault.resources() & busy
            if clash:
                raise FaultError(f"{fault.describe()} would overlap an active fault on "
                                 f"{sorted(clash)[0]}: heal that one first")
            entry = _Applied(fault, len(self.applied) if step is None else step)
            self.applied.append(entry)  # before apply: a half-applied fault is still undone
        self._record(fault, entry.step, "apply", lambda: fault.apply(self.runtime))
        return fault

    def undo(self, fault: Fault) -> None:
        """Undo one applied fault (once; a second call does nothing)."""
        with self._lock:
            entry = next((a for a in reversed(self.applied)
                          if not a.healed and (a.fault is fault or a.fault == fault)), None)
            if entry is None:
                return
            entry.healed = True
        self._record(entry.fault, entry.step, "heal", lambda: entry.fault.undo(self.runtime))

    def heal(self) -> None:
        """Undo every fault still applied, newest first."""
        while True:
            with self._lock:
                pending = [a for a in self.applied if not a.healed]
            if not pending:
                return
            self.undo(pending[-1].fault)

    def __enter__(self) -> Nemesis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.heal()

    def run(self, schedule: Schedule, *, t0: float, stop: threading.Event | None = None,
            clock: Callable[[], float] = time.monotonic) -> None:
        """Apply and heal each step on time (``at`` seconds after ``t0`` on ``clock``).
        Returns when the last step is healed, or at once when ``stop`` is set; either way
        every applied fault is healed."""
        stop = stop or threading.Event()
        events = sorted([(s.at, 1, i) for i, s in enumerate(schedule.steps)]
                        + [(s.end, 0, i) for i, s in enumerate(schedule.steps)])
        faults: dict[int, Fault] = {}
        try:
            for when, is_apply, i in events:
                if stop.wait(max(0.0, t0 + when - clock())):  # pacing to the schedule
                    return
                if is_apply:
                    faults[i] = self.apply(schedule.steps[i].fault, step=i)
                elif i in faults:
                    self.undo(faults[i])
        finally:
            self.heal()
