"""Toxic types: one small frozen value per type whose fields are its JSON attributes.

A toxic value is pure configuration. Running on one direction of one connection it gets a
``ToxicState`` that turns incoming chunks into scheduled chunks: ``(ready_time, payload, stamp)``
where the payload is bytes or an action (``CLOSE``, ``RESET``, ``EOF``). States do no I/O; they
ask the link for timed actions through ``Effects.schedule`` so they can be tested without
sockets or sleeps.

The toxics of a direction form a chain, in the order they were added: each one receives what
the previous one released, at the time it released it (``ready_time``). ``stamp`` is Toxiproxy's
chunk timestamp: the time the chunk entered the proxy, advanced by each latency toxic by its
delay. A latency toxic releases a chunk at ``stamp + delay`` (never before the chunk reached
it), so latency toxics in a row add up, and a latency after a bandwidth toxic counts from the
time the chunk entered the proxy, as in Toxiproxy.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Protocol

from chaos.proxy import errors

CLOSE = "close"  # close both sockets (FIN)
RESET = "reset"  # close both sockets with a TCP RST
EOF = "eof"  # half-close the destination

STREAMS = ("upstream", "downstream")

Payload = bytes | str
Chunk = tuple[float, Payload]  # (ready time, payload): what the link sends when due
Stamped = tuple[float, Payload, float]  # (ready time, payload, stamp): a chunk in the chain


class Handle(Protocol):
    def cancel(self) -> None: ...


class Effects(Protocol):
    """What a toxic state may ask of its link."""

    def schedule(self, at: float, action: str) -> Handle: ...


class ToxicState:
    """The per-link state of a toxic; the base passes data through unchanged."""

    def __init__(self, toxic: Toxic, rng: random.Random) -> None:
        self.toxic = toxic
        self.rng = rng
        self.timers: list[Handle] = []

    def start(self, now: float, fx: Effects) -> None:
        """Called when the toxic begins acting on the link (creation or update)."""

    def process(self, ready: float, data: bytes, stamp: float, fx: Effects) -> list[Stamped]:
        """``data`` reached this toxic at ``ready``; return what it releases, and when."""
        return [(ready, data, stamp)]

    def on_eof(self, now: float, fx: Effects) -> bool:
        """The source closed; return True to swallow the end of stream."""
        return False

    def eof_delay(self) -> float:
        return 0.0

    def stop(self, now: float, fx: Effects) -> None:
        """Called when the toxic is removed from a live link."""

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()


@dataclass(frozen=True)
class Toxic:
    """Base of all toxic types; subclasses declare integer attributes as fields."""

    type_name: ClassVar[str] = ""
    state_class: ClassVar[type[ToxicState]] = ToxicState

    def attributes(self) -> dict[str, int]:
        return asdict(self)

    def validate(self) -> None:
        """Raise ``ApiError`` (400) if the attribute combination is invalid."""

    def new_state(self, rng: random.Random) -> ToxicState:
        return self.state_class(self, rng)

    @classmethod
    def from_attributes(cls, attrs: object, base: Toxic | None = None) -> Toxic:
        """Build from JSON attributes, merged over ``base`` (unknown keys are ignored)."""
        if attrs is None:
            attrs = {}
        if not isinstance(attrs, dict):
            raise errors.bad_request("attributes must be an object")
        values = base.attributes() if base is not None else {}
        for f in fields(cls):
            if f.name in attrs:
                values[f.name] = _non_negative_int(f.name, attrs[f.name])
        toxic = cls(**values)
        toxic.validate()
        return toxic


REGISTRY: dict[str, type[Toxic]] = {}


def register(cls: type[Toxic]) -> type[Toxic]:
    REGISTRY[cls.type_name] = cls
    return cls


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.bad_request(f"attribute {name!r} must be a number, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise errors.bad_request(f"attribute {name!r} must be an integer, got {value!r}")
    if value < 0:
        raise errors.bad_request(f"attribute {name!r} must not be negative, got {value!r}")
    if value > 2**53:
        raise errors.bad_request(f"attribute {name!r} is too large: {value!r}")
    return int(value)


# --- latency ---------------------------------------------------------------------------------


class LatencyState(ToxicState):
    toxic: Latency

    def draw_ms(self) -> int:
        """Latency +/- jitter in ms for one chunk, drawn like Toxiproxy (uniform integer)."""
        jitter = self.toxic.jitter
        delay = self.toxic.latency
        if jitter > 0:
            delay += self.rng.randrange(2 * jitter) - jitter
        return max(delay, 0)

    def process(self, ready, data, stamp, fx):
        # Like Toxiproxy, the delay counts from the chunk's stamp, which this toxic advances.
        due = stamp + self.draw_ms() / 1000.0
        return [(max(ready, due), data, due)]


@register
@dataclass(frozen=True)
class Latency(Toxic):
    """Delay every chunk by ``latency`` ms +/- ``jitter`` ms."""

    type_name: ClassVar[str] = "latency"
    state_class: ClassVar[type[ToxicState]] = LatencyState
    latency: int = 0
    jitter: int = 0


# --- bandwidth -------------------------------------------------------------------------------


class BandwidthState(ToxicState):
    toxic: Bandwidth

    def __init__(self, toxic, rng):
        super().__init__(toxic, rng)
        self.free_at = 0.0

    def process(self, ready, data, stamp, fx):
        rate = self.toxic.rate  # KB/s = bytes per ms
        if rate <= 0:
            return [(ready, data, stamp)]
        piece = rate * 100  # like Toxiproxy: at most 100 ms worth of data per write
        t = max(ready, self.free_at)
        out: list[Stamped] = []
        for offset in range(0, len(data), piece):
            part = data[offset:offset + piece]
            t += len(part) / (rate * 1000.0)
            out.append((t, part, stamp))
        self.free_at = t
        return out


@register
@dataclass(frozen=True)
class Bandwidth(Toxic):
    """Limit the rate to ``rate`` KB/s (1 KB = 1000 bytes, as in Toxiproxy)."""

    type_name: ClassVar[str] = "bandwidth"
    state_class: ClassVar[type[ToxicState]] = BandwidthState
    rate: int = 0


# --- slow_close ------------------------------------------------------------------------------


class SlowCloseState(ToxicState):
    toxic: SlowClose

    def eof_delay(self) -> float:
        return self.toxic.delay / 1000.0


@register
@dataclass(frozen=True)
class SlowClose(Toxic):
    """Delay the close of the connection by ``delay`` ms."""

    type_name: ClassVar[str] = "slow_close"
    state_class: ClassVar[type[ToxicState]] = SlowCloseState
    delay: int = 0


# --- timeout ---------------------------------------------------------------------------------


class TimeoutState(ToxicState):
    toxic: TimeoutToxic

    def start(self, now, fx):
        if self.toxic.timeout > 0:
            self.timers.append(fx.schedule(now + self.toxic.timeout / 1000.0, CLOSE))

    def process(self, ready, data, stamp, fx):
        return []  # data is held (dropped) until the connection closes

    def on_eof(self, now, fx):
        return True

    def stop(self, now, fx):
        self.timers.append(fx.schedule(now, CLOSE))  # removal closes what it held


@register
@dataclass(frozen=True)
class TimeoutToxic(Toxic):
    """Stop all data, close after ``timeout`` ms (0: hold until the toxic is removed)."""

    type_name: ClassVar[str] = "timeout"
    state_class: ClassVar[type[ToxicState]] = TimeoutState
    timeout: int = 0


# --- reset_peer ------------------------------------------------------------------------------


class ResetPeerState(ToxicState):
    toxic: ResetPeer

    def __init__(self, toxic, rng):
        super().__init__(toxic, rng)
        self.triggered = False

    def _trigger(self, now: float, fx: Effects) -> None:
        if not self.triggered:
            self.triggered = True
            self.timers.append(fx.schedule(now + self.toxic.timeout / 1000.0, RESET))

    def process(self, ready, data, stamp, fx):
        # As in Toxiproxy: the first data to reach it starts the clock, data is dropped, then
        # a TCP RST.
        self._trigger(ready, fx)
        return []

    def on_eof(self, now, fx):
        self._trigger(now, fx)
        return True


@register
@dataclass(frozen=True)
class ResetPeer(Toxic):
    """On data, wait ``timeout`` ms, then reset the connection (TCP RST)."""

    type_name: ClassVar[str] = "reset_peer"
    state_class: ClassVar[type[ToxicState]] = ResetPeerState
    timeout: int = 0


# --- slicer ----------------------------------------------------------------------------------


class SlicerState(ToxicState):
    toxic: Slicer

    def __init__(self, toxic, rng):
        super().__init__(toxic, rng)
        self.free_at = 0.0

    def cuts(self, size: int) -> list[tuple[int, int]]:
        """Split ``[0, size)`` in pieces of about average_size +/- size_variation."""
        avg, var = self.toxic.average_size, self.toxic.size_variation
        out: list[tuple[int, int]] = []
        stack = [(0, size)]
        while stack:
            start, end = stack.pop()
            if (end - start) - avg <= var:
                out.append((start, end))
                continue
            mid = start + (end - start) // 2
            if var > 0:
                mid += self.rng.randrange(2 * var) - var
            stack.append((mid, end))
            stack.append((start, mid))
        return out

    def process(self, ready, data, stamp, fx):
        step = self.toxic.delay / 1e6
        t = max(ready, self.free_at)
        out: list[Stamped] = []
        for start, end in self.cuts(len(data)):
            out.append((t, data[start:end], stamp))
            t += step
        self.free_at = t
        return out


@register
@dataclass(frozen=True)
class Slicer(Toxic):
    """Slice data in pieces of ``average_size`` +/- ``size_variation`` bytes, ``delay`` µs apart."""

    type_name: ClassVar[str] = "slicer"
    state_class: ClassVar[type[ToxicState]] = SlicerState
    average_size: int = 0
    size_variation: int = 0
    delay: int = 0

    def validate(self) -> None:
        if self.average_size < 1:
            raise errors.bad_request("slicer needs average_size >= 1")
        if self.size_variation >= self.average_size:
            raise errors.bad_request("slicer size_variation must be less than average_size")


# --- limit_data ------------------------------------------------------------------------------


class LimitDataState(ToxicState):
    toxic: LimitData

    def __init__(self, toxic, rng):
        super().__init__(toxic, rng)
        self.passed = 0
        self.closed = False

    def process(self, ready, data, stamp, fx):
        if self.closed:
            return []
        remaining = max(self.toxic.bytes - self.passed, 0)
        part = data[:remaining]
        self.passed += len(part)
        out: list[Stamped] = [(ready, part, stamp)] if part else []
        if self.passed >= self.toxic.bytes:
            self.closed = True
            out.append((ready, CLOSE, stamp))
        return out


@register
@dataclass(frozen=True)
class LimitData(Toxic):
    """Close the connection once ``bytes`` bytes have passed."""

    type_name: ClassVar[str] = "limit_data"
    state_class: ClassVar[type[ToxicState]] = LimitDataState
    bytes: int = 0


@register
@dataclass(frozen=True)
class Noop(Toxic):
    """Does nothing."""

    type_name: ClassVar[str] = "noop"


# --- the toxic as the API knows it -----------------------------------------------------------


@dataclass(frozen=True)
class ToxicSpec:
    """A named toxic on one stream of a proxy, with its toxicity."""

    name: str
    stream: str
    toxicity: float
    toxic: Toxic

    @property
    def type(self) -> str:
        return self.toxic.type_name

    def to_json(self) -> dict[str, Any]:
        return {"attributes": self.toxic.attributes(), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": self.toxicity}

    @classmethod
    def parse(cls, body: object) -> ToxicSpec:
        """Validate a create request, in Toxiproxy's order: body, stream, type, attributes."""
        if not isinstance(body, dict):
            raise errors.bad_request("expected a JSON object")
        stream = _string(body, "stream", "downstream")
        if stream.lower() not in STREAMS:
            raise errors.invalid_stream()
        type_name = _string(body, "type", "")
        name = _string(body, "name", "") or f"{type_name}_{stream}"
        toxic_class = REGISTRY.get(type_name)
        if toxic_class is None:
            raise errors.invalid_toxic_type()
        toxicity = _toxicity(body.get("toxicity", 1.0))
        toxic = toxic_class.from_attributes(body.get("attributes"))
        return cls(name=name, stream=stream.lower(), toxicity=toxicity, toxic=toxic)

    def updated(self, body: object) -> ToxicSpec:
        """Merge an update request: attributes and toxicity; other fields are ignored."""
        if not isinstance(body, dict):
            raise errors.bad_request("expected a JSON object")
        toxicity = _toxicity(body["toxicity"]) if "toxicity" in body else self.toxicity
        toxic = type(self.toxic).from_attributes(body.get("attributes"), base=self.toxic)
        return ToxicSpec(name=self.name, stream=self.stream, toxicity=toxicity, toxic=toxic)


def _string(body: dict, key: str, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise errors.bad_request(f"{key} must be a string, got {value!r}")
    return value


def _toxicity(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.bad_request(f"toxicity must be a number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise errors.bad_request(f"toxicity must be between 0 and 1, got {value!r}")
    return float(value)


# --- a toxic running on one link -------------------------------------------------------------


class ActiveToxic:
    """A toxic on one direction of one connection: its toxicity draw and its state.

    The first draw of ``rng`` decides whether the toxic acts on this connection (like
    Toxiproxy, an update draws again); later draws belong to the toxic (jitter, slices).
    """

    def __init__(self, spec: ToxicSpec, rng: random.Random, now: float, fx: Effects) -> None:
        self.spec = spec
        self.rng = rng
        self.state = spec.toxic.new_state(rng)
        self.affected = rng.random() < spec.toxicity
        if self.affected:
            self.state.start(now, fx)

    def retune(self, spec: ToxicSpec, now: float, fx: Effects) -> None:
        self.state.cancel_timers()
        self.spec = spec
        self.state.toxic = spec.toxic
        self.affected = self.rng.random() < spec.toxicity
        if self.affected:
            self.state.start(now, fx)

    def process(self, chunks: list[Stamped], fx: Effects) -> list[Stamped]:
        """Run what the previous toxic of the chain released through this one."""
        if not self.affected:
            return chunks
        out: list[Stamped] = []
        last = 0.0
        for ready, payload, stamp in chunks:
            if isinstance(payload, bytes):
                produced = self.state.process(ready, payload, stamp, fx)
            else:  # actions keep their place in the stream
                produced = [(max(ready, last), payload, stamp)]
            for item in produced:
                last = max(last, item[0])
            out.extend(produced)
        return out

    def on_eof(self, now: float, fx: Effects) -> bool:
        return self.affected and self.state.on_eof(now, fx)

    def eof_delay(self) -> float:
        return self.state.eof_delay() if self.affected else 0.0

    def stop(self, now: float, fx: Effects) -> None:
        self.state.cancel_timers()
        if self.affected:
            self.state.stop(now, fx)

