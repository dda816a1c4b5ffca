"""What every fault shares: the protocol, the registry by name, parsing and binding.

A fault is a small frozen value. ``bind(topology, rng)`` checks its targets and computes its
plan before anything starts (pure: a partition's cut, a random choice); ``apply(runtime)``
breaks something; ``undo(runtime)`` means "back to healthy" and is safe to repeat, also when
``apply`` never ran or failed half-way. A fault asks the runtime only for the ability it uses
(:class:`~chaos.runtime.base.Killable`, ``Pausable``, ``Meshed``, ``Scalable``) and says so
plainly when the runtime lacks it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import typing
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from chaos.topology import Topology

__all__ = ["Fault", "FaultBase", "FaultError", "FAULTS", "register", "parse_fault", "require"]


class FaultError(ValueError):
    """A fault that cannot be built, bound or applied here; the message is one line that
    names the problem and the valid choices."""


@runtime_checkable
class Fault(Protocol):
    """A small frozen value: ``bind`` (pure: check targets, compute the plan), ``apply``,
    and ``undo`` ("back to healthy", safe to repeat)."""

    kind: ClassVar[str]

    def bind(self, topology: Topology, rng: random.Random) -> Fault: ...

    def apply(self, runtime: Any) -> None: ...

    def undo(self, runtime: Any) -> None: ...

    def resources(self) -> frozenset[str]:
        """What the fault holds while active; two faults that share one cannot overlap."""

    def targets(self) -> tuple[str, ...]:
        """The services it acts on (recorded as the fault's target in the history: what
        failover, herd and breaker checks look at); empty for the whole cluster."""

    def describe(self) -> str: ...


FAULTS: dict[str, type] = {}
F = TypeVar("F")


def register(kind: str) -> Callable[[type[F]], type[F]]:
    """Class decorator: make a fault type choosable by ``kind`` (scenarios, the CLI)."""
    def deco(cls: type[F]) -> type[F]:
        if kind in FAULTS:
            raise ValueError(f"fault {kind!r} is registered twice")
        cls.kind = kind
        FAULTS[kind] = cls
        return cls
    return deco


def require(runtime: Any, ability: type, kind: str, what: str) -> None:
    """Raise :class:`FaultError` unless ``runtime`` has ``ability``."""
    if not isinstance(runtime, ability):
        raise FaultError(f"{kind} needs a runtime that can {what}; "
                         f"{getattr(runtime, 'name', type(runtime).__name__)} cannot")


class FaultBase:
    """Shared behaviour; subclasses are frozen dataclasses whose fields are the fault's
    parameters (a field named ``node`` is a target checked against the topology)."""

    __slots__ = ()
    kind: ClassVar[str] = ""
    needs_mesh: ClassVar[bool] = False
    instant: ClassVar[bool] = False  # a one-off action (restart, scale-up): nothing to heal

    def bind(self, topology: Topology, rng: random.Random) -> Fault:
        node = getattr(self, "node", None)
        if node is not None and node not in topology.services:
            raise FaultError(f"{self.kind}: unknown target {node!r}: choose one of "
                             f"{', '.join(topology.services)}")
        return self

    def resources(self) -> frozenset[str]:
        node = getattr(self, "node", None)
        return frozenset({f"process:{node}"} if node else ())

    def targets(self) -> tuple[str, ...]:
        node = getattr(self, "node", None)
        return (node,) if node else ()

    def describe(self) -> str:
        params = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                  if f.name != "node" and f.repr and getattr(self, f.name) != f.default]
        node = getattr(self, "node", None)
        return " ".join([self.kind, *([node] if node else []), *params])

    @contextlib.contextmanager
    def active(self, runtime: Any) -> Iterator[Fault]:
        """``with fault.active(rt):`` applies it and undoes it on the way out, always."""
        try:
            self.apply(runtime)
            yield self
        finally:
            self.undo(runtime)


_COMPUTED = ("cut", "via")  # filled in by bind(), not written by users


def _convert(raw: str, annotation: Any, name: str, kind: str) -> Any:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        annotation, origin = args[0], typing.get_origin(args[0])
    try:
        if annotation is bool:
            if raw.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "yes", "1")
        if annotation is int:
            return int(raw)
        if annotation is float:
            return float(raw)
        if origin is tuple:
            return tuple(part for part in raw.split("+") if part)
        if origin is typing.Literal:
            if raw not in typing.get_args(annotation):
                raise ValueError(raw)
            return raw
    except ValueError:
        choices = typing.get_args(annotation) if origin is typing.Literal else None
        hint = f"choose one of {', '.join(choices)}" if choices else \
            f"expected {getattr(annotation, '__name__', annotation)}"
        raise FaultError(f"{kind}: bad value {raw!r} for {name}: {hint}") from None
    return raw


def parse_fault(text: str) -> Fault:
    """A fault from its written form ``KIND[:ARG[:ARG...]]``, each ARG positional (in field
    order) or ``name=value``; lists are joined with ``+``. For example ``kill:node-1``,
    ``isolate:node-2:clients=true``, ``latency:node-1:ms=200:jitter=20``, ``split:node-1+node-2``."""
    kind, _, rest = text.strip().partition(":")
    cls = FAULTS.get(kind)
    if cls is None:
        raise FaultError(f"unknown fault {kind!r}: choose one of {', '.join(sorted(FAULTS))}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in _COMPUTED]
    values: dict[str, Any] = {}
    positional = 0
    for arg in (a for a in rest.split(":") if a) if rest else ():
        name, eq, raw = arg.partition("=")
        if not eq:
            if positional >= len(names):
                raise FaultError(f"{kind}: too many arguments in {text!r} (it takes "
                                 f"{', '.join(names) or 'none'})")
            name, raw = names[positional], arg
            positional += 1
        elif name not in names:
            raise FaultError(f"{kind}: unknown parameter {name!r}: choose one of "
                             f"{', '.join(names) or 'none'}")
        values[name] = _convert(raw, hints.get(name, str), name, kind)
    required = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in values
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        raise FaultError(f"{kind} needs {', '.join(required)} (e.g. {kind}:node-1); "
                         f"parameters: {', '.join(names)}")
    try:
        return cls(**values)
    except ValueError as exc:
        raise FaultError(f"{kind}: {exc}") from None
