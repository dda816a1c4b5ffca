"""The traffic of a chaos run: one workload value, one engine (Locust), one client protocol.

- :class:`Workload`: what the virtual users do, written down;
- :class:`KVClient`: the harness's only view of the system under test, a blocking
  ``put``/``get``/``close``, with two adapters: :class:`GatewayKV` (only the documented
  HTTP API of the registry's gateway) and :class:`SmartKV` (the smart client);
- typed errors (:class:`KVError` and its kinds) and :func:`outcome`, which says whether a
  failed operation definitely did not happen (``fail``) or may have (``info``).

Both adapters work in a plain process and inside Locust (gevent's monkey-patching): the
gateway adapter's pooled HTTP client then uses gevent's sockets, the smart client runs its
event loop on a native thread (see :class:`system.client.SyncClient`).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import quote, urlsplit

import httptools
import httpx
import orjson

from system.backoff import JITTER_KINDS
from system.config import ClientConfig
from system.coordinator import QuorumError
from system.transport import TransportError
from system.validation import BadRequest

__all__ = ["Workload", "PATTERNS", "CLIENTS", "KVClient", "GatewayKV", "SmartKV", "KVError",
           "Unavailable", "Rejected", "Timeout", "ConnectFailed", "ConnectionLost",
           "ServerError", "outcome", "version_text", "version_key", "make_kv"]

PATTERNS = ("own", "shared", "hot")
CLIENTS = ("smart", "gateway")
GATEWAYS = ("registry", "nodes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """What the virtual users do, written down.

    - ``client``: ``smart`` (the smart client: routing, breakers, retries) or ``gateway``
      (only the documented HTTP API of the registry's gateway);
    - ``pattern``: ``own`` (each user its own keys, reads check read-your-writes), ``shared``
      (all users write the same ``keys`` keys concurrently, each write a unique value: where
      lost updates live), ``hot`` (most operations on one key);
    - ``users`` virtual users in ``processes`` Locust worker processes, for ``duration``
      seconds (the run stops by itself);
    - ``keys``: per user for ``own``, in all for ``shared`` and ``hot``;
    - ``gateways`` (gateway client): the ``registry``'s gateway, or every node's own
      (``/gateway/data``, one drawn per operation): each node then stamps versions with its
      own clock, which is what the clock-skew fault needs;
    - the smart client's retry ``jitter`` (``full``, ``decorrelated``, or ``none``: the
      weakened mode) and its breakers' ``breaker_threshold`` and ``breaker_cooldown``.
    """

    users: int = 8
    processes: int = 1
    duration: float = 12.0
    client: Literal["smart", "gateway"] = "smart"
    pattern: Literal["own", "shared", "hot"] = "own"
    keys: int = 100
    write_ratio: float = 0.5
    value_size: int = 64
    request_timeout: float = 0.5
    retries: int = 3
    gateways: Literal["registry", "nodes"] = "registry"
    jitter: str = "full"
    breaker_threshold: int = 3
    breaker_cooldown: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.gateways not in GATEWAYS:
            problems.append(f"unknown gateways {self.gateways!r}: choose one of "
                            f"{', '.join(GATEWAYS)}")
        if self.jitter not in JITTER_KINDS:
            problems.append(f"unknown jitter {self.jitter!r}: choose one of "
                            f"{', '.join(JITTER_KINDS)}")
        if self.breaker_threshold < 1:
            problems.append(f"breaker_threshold must be at least 1, got {self.breaker_threshold}")
        if not self.breaker_cooldown >= 0:
            problems.append(f"breaker_cooldown must not be negative, got {self.breaker_cooldown}")
        if self.users < 1:
            problems.append(f"users must be at least 1, got {self.users}")
        if not 1 <= self.processes <= 64:
            problems.append(f"processes must be from 1 to 64, got {self.processes}")
        if not self.duration > 0:
            problems.append(f"duration must be positive (seconds), got {self.duration}")
        if self.client not in CLIENTS:
            problems.append(f"unknown client {self.client!r}: choose one of {', '.join(CLIENTS)}")
        if self.pattern not in PATTERNS:
            problems.append(f"unknown pattern {self.pattern!r}: choose one of "
                            f"{', '.join(PATTERNS)}")
        if not 1 <= self.keys <= 1 << 20:
            problems.append(f"keys must be from 1 to 1048576, got {self.keys}")
        if not 0.0 <= self.write_ratio <= 1.0:
            problems.append(f"write_ratio must be from 0 to 1, got {self.write_ratio}")
        if not 1 <= self.value_size <= 1 << 20:
            problems.append(f"value_size must be from 1 to 1048576 bytes, got {self.value_size}")
        if not self.request_timeout > 0:
            problems.append(f"request_timeout must be positive, got {self.request_timeout}")
        if self.retries < 0:
            problems.append(f"retries must be 0 or more, got {self.retries}")
        if problems:
            raise ValueError("; ".join(problems))


# ---- the client protocol ------------------------------------------------------------------
class KVClient(Protocol):
    """A blocking key-value client. Errors are :class:`KVError` (or anything else, which
    :func:`outcome` counts as indefinite)."""

    def put(self, key: str, value: str) -> str | None:
        """Write; the version the system answered with (None if it gave none)."""

    def get(self, key: str) -> tuple[str | None, str | None]:
        """Read; (value, version), (None, None) when the key is not found."""

    def tries(self) -> tuple[int | None, int | None]:
        """(attempts, replica requests) of the calling thread's (or greenlet's) last
        operation, whatever its outcome; None where the client cannot tell."""

    def close(self) -> None: ...


class _Tries(threading.local):
    """Per thread (per greenlet under gevent): what the last operation cost."""

    last: tuple[int | None, int | None] = (None, None)

    def note(self, answer) -> None:
        """From a coordinator's result, quorum error or JSON answer."""
        if isinstance(answer, dict):
            self.last = (_int_or_none(answer.get("attempts")), _int_or_none(answer.get("requests")))
        else:
            self.last = (getattr(answer, "attempts", None), getattr(answer, "requests", None))


def _int_or_none(raw) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def version_text(raw) -> str | None:
    """A version as the system answers it (``[wall_ms, counter, node]``) as one string,
    ``"wall_ms.counter@node"``, for the history; None if there is none."""
    if raw is None:
        return None
    try:
        wall_ms, counter, node = raw
    except (TypeError, ValueError):
        return str(raw)
    return f"{wall_ms}.{counter}@{node}"


def version_key(text: str) -> tuple[int, int, str]:
    """The comparable form of :func:`version_text`'s string (the system's version order)."""
    stamp, _, node = text.partition("@")
    wall_ms, _, counter = stamp.partition(".")
    return int(wall_ms), int(counter), node


# ---- typed errors -----------------------------------------------------------------------
class KVError(Exception):
    """An operation did not succeed. ``definite``: it certainly did not happen. The message
    names the kind of failure, never the key or the value, so Locust counts one row per
    kind."""

    definite: bool = False

    def __init__(self, message: str, *, definite: bool | None = None) -> None:
        super().__init__(message)
        if definite is not None:
            self.definite = definite


class Unavailable(KVError):
    """The quorum was not reached (503). Definite only when the system says no replica was
    reached in any attempt."""

    def __init__(self, op: str, *, acks: int, needed: int, definite: bool) -> None:
        what = "no replica reached" if definite else "replicas may hold it"
        super().__init__(f"{op}: quorum not reached: {acks} of {needed} acks ({what})",
                         definite=definite)
        self.op, self.acks, self.needed = op, acks, needed


class Rejected(KVError):
    """The system refused the request (a 4xx, or an invalid key or value): definite."""

    definite = True

    def __init__(self, op: str, status: int | None, reason: str) -> None:
        super().__init__(f"{op}: rejected ({status or 'client'}): {reason}"[:160], definite=True)
        self.status = status


class Timeout(KVError):
    """No answer in time: it may have happened."""


class ConnectFailed(KVError):
    """No connection, so nothing was sent (refused, unreachable, no free connection): definite."""

    definite = True


class ConnectionLost(KVError):
    """The connection broke after the request was (or may have been) sent: indefinite."""


class ServerError(KVError):
    """A 5xx other than a quorum error (a crash mid-request, a proxy's 502): indefinite."""


def outcome(exc: BaseException) -> Literal["fail", "info"]:
    """``fail`` only when the system says the operation definitely did not happen (the
    ``definite`` attribute of :class:`KVError`, :class:`~system.coordinator.QuorumError`,
    :class:`~system.transport.TransportError`); anything else is ``info``: when in doubt,
    indefinite."""
    if isinstance(exc, (KVError, QuorumError, TransportError)) and exc.definite is True:
        return "fail"
    return "info"


# ---- the gateway adapter ----------------------------------------------------------------
class GatewayKV:
    """Only the documented HTTP API of the registry's gateway: ``POST /data`` and
    ``GET /data/{key}``, over one pooled keep-alive HTTP client of ``pool`` connections.

    In a process patched by gevent (Locust) that client is :class:`_SocketHttp`: plain
    keep-alive sockets (gevent's, so cooperative) and the httptools parser, about half of
    geventhttpclient's CPU per request (0.1 ms against 0.2 here), which matters on a machine
    shared with the cluster. Elsewhere it is httpx's; ``transport`` (an
    ``httpx.MockTransport``) forces httpx, for tests."""

    threadsafe = True  # httpx's client and the socket pool both are

    def __init__(self, base_url: str, timeout: float = 1.0, *, pool: int = 16,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        if transport is None and _gevent_patched():
            self._http: _Http = _SocketHttp(self.base_url, timeout, pool)
        else:
            self._http = _HttpxHttp(self.base_url, timeout, pool, transport)
        self._tries = _Tries()

    def tries(self) -> tuple[int | None, int | None]:
        return self._tries.last

    def put(self, key: str, value: str) -> str | None:
        self._tries.last = (None, None)
        status, body = self._http.request("write", "POST", "/data",
                                          orjson.dumps({"key": key, "value": value}))
        self._tries.note(body)
        if status != 200:
            raise _http_error("write", status, body)
        return version_text(body.get("version"))

    def get(self, key: str) -> tuple[str | None, str | None]:
        self._tries.last = (None, None)
        status, body = self._http.request("read", "GET", f"/data/{quote(key, safe='')}", None)
        self._tries.note(body)
        if status == 404:
            return None, None
        if status != 200:
            raise _http_error("read", status, body)
        return body.get("value"), version_text(body.get("version"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayKV:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NodeGatewaysKV:
    """The gateway API every node serves (``/gateway/data``): each operation goes to one node
    drawn from ``rng``, which coordinates it with versions from its own clock."""

    def __init__(self, node_urls: list[str], timeout: float, *, rng, pool: int = 16,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not node_urls:
            raise ValueError("no node to send operations to")
        self._kvs = [GatewayKV(f"{u.rstrip('/')}/gateway", timeout, pool=pool, transport=transport)
                     for u in node_urls]
        self._rng = rng
        self._last = threading.local()  # the node this thread's last operation went to

    def tries(self) -> tuple[int | None, int | None]:
        kv = getattr(self._last, "kv", None)
        return (None, None) if kv is None else kv.tries()

    def put(self, key: str, value: str) -> str | None:
        self._last.kv = kv = self._rng.choice(self._kvs)
        return kv.put(key, value)

    def get(self, key: str) -> tuple[str | None, str | None]:
        self._last.kv = kv = self._rng.choice(self._kvs)
        return kv.get(key)

    def close(self) -> None:
        for kv in self._kvs:
            kv.close()


class _Http(Protocol):
    def request(self, op: str, method: str, path: str, body: bytes | None) -> tuple[int, dict]:
        """(status, JSON object body or {}); transport failures as :class:`KVError`."""

    def close(self) -> None: ...


_HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}


class _HttpxHttp:
    def __init__(self, base_url: str, timeout: float, pool: int,
                 transport: httpx.BaseTransport | None) -> None:
        if transport is None:  # h11 writes head and body apart: without NODELAY, Nagle waits
            transport = httpx.HTTPTransport(socket_options=_NODELAY, limits=httpx.Limits(
                max_connections=pool, max_keepalive_connections=pool))
        self._client = httpx.Client(base_url=base_url, timeout=timeout, transport=transport,
                                    headers=_HEADERS)

    def request(self, op: str, method: str, path: str, body: bytes | None) -> tuple[int, dict]:
        try:
            resp = self._client.request(method, path, content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # no connection, so no byte of the request left: it did not happen
            raise ConnectFailed(f"{op}: cannot connect ({type(exc).__name__})") from exc
        except httpx.TimeoutException as exc:  # sent, or maybe sent: it may have happened
            raise Timeout(f"{op}: no answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:  # reset, closed mid-answer: it may have
            raise ConnectionLost(f"{op}: connection lost ({type(exc).__name__})") from exc
        return resp.status_code, _json(resp.content)

    def close(self) -> None:
        self._client.close()


class _SocketHttp:
    """Keep-alive HTTP/1.1 over blocking sockets (gevent's when patched) and the httptools
    parser: a request is one ``sendall`` and, for the services' small JSON answers, one
    ``recv``. At most ``pool`` idle connections are kept; one idle for ``REUSE_IDLE``
    seconds or more is closed instead of reused, well before the services close idle ones
    (uvicorn: 5 s): a request sent on a connection the server is closing would be lost the
    way one in flight is, an ``info`` where nothing happened."""

    REUSE_IDLE = 2.0

    def __init__(self, base_url: str, timeout: float, pool: int, *,
                 clock=time.monotonic) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"{base_url!r}: the gateway adapter speaks plain http://host:port")
        self._address = (url.hostname, url.port or 80)
        self._prefix = url.path.rstrip("/")  # a gateway served under a path (a node's /gateway)
        self._head = (f"Host: {url.netloc}\r\nContent-Type: application/json\r\n"
                      f"Accept-Encoding: identity\r\n")
        self._timeout, self._pool, self._clock = timeout, pool, clock
        self._idle: list[_Connection] = []  # a stack: the most recently used on top
        self._closed = False

    def request(self, op: str, method: str, path: str, body: bytes | None) -> tuple[int, dict]:
        body = body or b""
        data = (f"{method} {self._prefix}{path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
                ).encode("latin-1") + body
        conn = self._checkout()
        if conn is None:
            try:
                conn = _Connection(self._address, self._timeout)
            except OSError as exc:  # refused, unreachable, timed out: nothing was sent
                raise ConnectFailed(f"{op}: cannot connect ({type(exc).__name__})") from exc
        try:
            status, raw = conn.exchange(data)
        except TimeoutError as exc:  # sent, or maybe sent: it may have happened
            conn.close()
            raise Timeout(f"{op}: no answer in time ({type(exc).__name__})") from exc
        except (OSError, httptools.HttpParserError) as exc:  # reset, closed mid-answer
            conn.close()
            raise ConnectionLost(f"{op}: connection lost ({type(exc).__name__})") from exc
        except BaseException:  # the caller is being stopped: the answer is not read
            conn.close()
            raise
        self._checkin(conn)
        return status, _json(raw)

    def _checkout(self) -> _Connection | None:
        idle, now = self._idle, self._clock()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < self.REUSE_IDLE:
                return conn
            conn.close()
        return None

    def _checkin(self, conn: _Connection) -> None:
        if conn.keep_alive and not self._closed and len(self._idle) < self._pool:
            conn.idle_since = self._clock()
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _Connection:
    """One keep-alive connection; httptools calls back as the answer arrives."""

    __slots__ = ("sock", "parser", "status", "body", "complete", "keep_alive", "idle_since")

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            self.sock.close()
            raise
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.body, self.complete = 0, [], False
        self.keep_alive, self.idle_since = True, 0.0

    def exchange(self, data: bytes) -> tuple[int, bytes]:
        self.body, self.complete = [], False
        self.sock.sendall(data)
        while not self.complete:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed before the answer was complete")
            self.parser.feed_data(chunk)
        return self.status, b"".join(self.body)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def close(self) -> None:
        self.sock.close()


_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


def _json(raw: bytes) -> dict:
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _http_error(op: str, status: int, body: dict) -> KVError:
    if status == 503 and "needed" in body:  # the coordinator's quorum error, with its counts
        return Unavailable(op, acks=int(body.get("acks", 0)), needed=int(body["needed"]),
                           definite=body.get("definite") is True)
    if 400 <= status < 500:
        return Rejected(op, status, str(body.get("error", "")))
    return ServerError(f"{op}: HTTP {status}")


# ---- the smart-client adapter -----------------------------------------------------------
class SmartKV:
    """The smart client (routing, breakers, retries, failover) as a :class:`KVClient`. Safe to
    share between the users of a process (one pool, one set of breakers, like an
    application's client). Extra keyword arguments go to :class:`SmartClient` (``transport``,
    ``rng``)."""

    threadsafe = True

    def __init__(self, config: ClientConfig, **kwargs) -> None:
        from system.client import SyncClient  # its bridges look at gevent when created

        self.config = config
        self._client = SyncClient(config, **kwargs)
        self._tries = _Tries()

    def tries(self) -> tuple[int | None, int | None]:
        return self._tries.last

    @property
    def client(self):
        return self._client

    def put(self, key: str, value: str) -> str | None:
        result = self._call("write", self._client.put, key, value)
        return version_text(result.version)

    def get(self, key: str) -> tuple[str | None, str | None]:
        result = self._call("read", self._client.get, key)
        if result.record is None:
            return None, None
        return result.record.value, version_text(result.record.version)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SmartKV:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, op: str, method, *args):
        self._tries.last = (None, None)
        try:
            result = method(*args)
        except QuorumError as exc:
            self._tries.note(exc)
            raise Unavailable(op, acks=len(exc.acks), needed=exc.needed,
                              definite=exc.definite) from exc
        except BadRequest as exc:  # check_key / check_value: nothing was sent
            raise Rejected(op, exc.status, str(exc)) from exc
        except TimeoutError as exc:  # the bridge gave up waiting: it may have happened
            raise Timeout(f"{op}: no answer in time") from exc
        self._tries.note(result)
        return result


def make_kv(client: str, registry: str, config: ClientConfig) -> GatewayKV | SmartKV:
    """The adapter a workload's ``client`` names, bound to the cluster at ``registry`` (the
    smart client's settings come from ``config``; the gateway needs only the URL)."""
    if client == "gateway":
        return GatewayKV(registry, timeout=config.request_timeout * (config.retries + 1))
    if client == "smart":
        return SmartKV(config)
    raise ValueError(f"unknown client {client!r}: choose one of {', '.join(CLIENTS)}")
