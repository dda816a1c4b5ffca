"""What runs inside Locust's processes: the virtual users of a chaos run and their options.

Import this only in a Locust process (``loadtests/locustfile.py`` does): importing ``locust``
monkey-patches the whole process with gevent. The host drives it through
:class:`chaos.load.Load`, which never imports this module.

Every operation is recorded raw, twice: through Locust's ``events.request`` hook (its
statistics, CSV and HTML reports; the timing unrounded) and, with ``--kv-history-dir DIR``,
as invoke then ok / fail / info into ``DIR/history-<host>-<pid>.jsonl``
(:class:`chaos.history.HistoryWriter`), the invoke written before the request is sent. A
failure is ``fail`` only when it definitely did not happen (:func:`chaos.traffic.outcome`).

Options (``--kv-*``): ``--kv-pattern own|shared|hot`` (see :class:`chaos.traffic.Workload`),
``--kv-keys``, ``--kv-write-ratio``, ``--kv-value-size``, ``--kv-seed`` (printed at the start
for a replay), ``--kv-timeout`` and ``--kv-retries`` (the smart client's per-request timeout
and retries; the gateway adapter allows ``timeout * (retries + 1)`` per operation, as the
gateway retries by itself), ``--kv-namespace`` (prefix of every key; default from the seed),
``--kv-history-dir`` and ``--kv-report FILE`` (a JSON summary at the end).
``--kv-host-file FILE``: Locust was started before the cluster (it imports itself while the
cluster starts); it waits, before any user runs and before its time limit counts, until
FILE holds the host's URL (and gives up when the process that started it is gone).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import random
import socket
import time
from dataclasses import dataclass, field

import gevent.lock
import httpx
from locust import User, constant, events
from locust.runners import WorkerRunner
from locust.stats import StatsError

from chaos.checkers import ReadYourWrites
from chaos.history import EVENT, INTERRUPTED, HistoryWriter
from chaos.live import BreakerBoard
from chaos.seeds import derive
from chaos.traffic import GATEWAYS, PATTERNS, GatewayKV, KVClient, NodeGatewaysKV, SmartKV, outcome
from chaos.wait import WaitTimeout, wait_for
from system.backoff import JITTER_KINDS
from system.config import ClientConfig, ClusterSettings

__all__ = ["KVUser", "SmartClientUser", "GatewayUser", "StaleRead", "STALE", "add_options"]

log = logging.getLogger("chaoslab.locust")

STALE = "stale read"  # the failure's name: one row in Locust's error report however many
HOT_SHARE = 0.9  # the "hot" pattern's share of operations on its one hot key


class StaleRead(AssertionError):
    """A read did not return the last acknowledged write of the key (``own`` pattern)."""


# ---- options ----------------------------------------------------------------------------
def _positive(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 1 << 20:
        raise argparse.ArgumentTypeError(f"{raw} is not between 1 and 1048576")
    return value


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{raw} is not between 0 and 1")
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{raw} is not a positive number of seconds")
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{raw} is negative")
    return value


@events.init_command_line_parser.add_listener
def add_options(parser) -> None:
    """The ``--kv-*`` options (Locust forwards them from the master to its workers)."""
    parser.add_argument("--kv-pattern", choices=PATTERNS, default="own",
                        help="own: keys per user, reads check read-your-writes; shared: all "
                             "users write the same keys; hot: most operations on one key")
    parser.add_argument("--kv-keys", type=_positive, default=100,
                        help="keys per virtual user (own), in all (shared, hot)")
    parser.add_argument("--kv-write-ratio", type=_ratio, default=0.5, help="share of writes")
    parser.add_argument("--kv-value-size", type=_positive, default=64,
                        help="bytes per value (at most 1 MiB, the cluster's limit)")
    parser.add_argument("--kv-seed", type=int, default=None, help="seed (default: random)")
    parser.add_argument("--kv-timeout", type=_seconds, default=1.0,
                        help="seconds per request to a replica (smart client)")
    parser.add_argument("--kv-retries", type=_count, default=3,
                        help="retries of an operation that missed its quorum (smart client)")
    parser.add_argument("--kv-gateways", choices=GATEWAYS, default="registry",
                        help="gateway user: the registry's gateway, or every node's own")
    parser.add_argument("--kv-jitter", choices=JITTER_KINDS, default="full",
                        help="smart client: retry jitter (none: the weakened mode)")
    parser.add_argument("--kv-breaker-threshold", type=_positive, default=3,
                        help="smart client: failures that open a node's breaker")
    parser.add_argument("--kv-breaker-cooldown", type=_seconds, default=1.0,
                        help="smart client: seconds an open breaker waits before a probe")
    parser.add_argument("--kv-namespace", default=None,
                        help="prefix of every key (default: from the seed)")
    parser.add_argument("--kv-history-dir", default=None,
                        help="record every operation into DIR/history-<host>-<pid>.jsonl")
    parser.add_argument("--kv-report", default=None,
                        help="write a JSON summary here at the end (counts, stale reads, errors)")
    parser.add_argument("--kv-host-file", default=None,
                        help="wait until FILE holds the host's URL, then start the users")


# ---- the state of one Locust process: one small object on the environment --------------
@dataclass
class _Run:
    """What the users of one Locust process share. Options are read when the first user
    starts: a worker receives the master's options with its first spawn message."""

    environment: object
    users: itertools.count = field(default_factory=lambda: itertools.count(1))
    writer: HistoryWriter | None = None
    clients: dict[str, KVClient] = field(default_factory=dict)
    lock: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)
    stale_logged: int = 0

    @property
    def options(self) -> argparse.Namespace:
        return self.environment.parsed_options

    @property
    def worker(self) -> int:
        return max(getattr(self.environment.runner, "worker_index", 0), 0)

    @property
    def namespace(self) -> str:
        return self.options.kv_namespace or f"kv{self.options.kv_seed}"

    def history(self) -> HistoryWriter | None:
        directory = self.options.kv_history_dir
        if directory and self.writer is None:
            os.makedirs(directory, exist_ok=True)
            name = f"history-{socket.gethostname()}-{os.getpid()}.jsonl"  # unique across machines
            self.writer = HistoryWriter(os.path.join(directory, name))
        return self.writer

    def client(self, kind: str, make) -> KVClient:
        """The process's one client of ``kind`` (one pool, one set of breakers)."""
        with self.lock:
            if kind not in self.clients:
                self.clients[kind] = make(self)
            return self.clients[kind]

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        clients, self.clients = self.clients, {}
        for c in clients.values():
            try:
                c.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's end
                log.warning("closing a client: %s", exc)
        if self.writer is not None:
            self.writer.close()


def _run_of(environment) -> _Run:
    run = getattr(environment, "chaoslab", None)
    if run is None:
        run = environment.chaoslab = _Run(environment)
    return run


@events.init.add_listener
def _init(environment, **_kw) -> None:
    run = _run_of(environment)

    def at_quit(exit_code: int, **_kw) -> None:  # the end: time limit, Ctrl-C or SIGTERM
        _write_report(environment, exit_code)
        run.close()

    environment.events.test_stop.add_listener(lambda **_kw: run.flush())
    environment.events.quit.add_listener(at_quit)  # quit carries no environment
    opts = environment.parsed_options
    if opts is None or isinstance(environment.runner, WorkerRunner):
        return  # a worker gets the master's options (and seed) with its first spawn message
    if opts.kv_host_file:
        environment.host = opts.host = _await_host(opts.kv_host_file)
    if opts.kv_seed is None:
        opts.kv_seed = random.SystemRandom().randrange(2**32)
    log.warning("chaoslab locust seed %d: rerun with --kv-seed %d", opts.kv_seed, opts.kv_seed)


def _await_host(path: str, *, timeout: float = 900.0) -> str:
    """The URL in ``path`` once it is there (the harness writes it when the cluster is up:
    an image build may take minutes); exits when the harness that started this is gone."""
    parent = os.getppid()

    def written() -> bool:
        with contextlib.suppress(FileNotFoundError), open(path) as fh:
            return bool(fh.read().strip())
        return False

    try:  # wait_for sleeps with gevent's sleep here: Locust's other greenlets run meanwhile
        wait_for(written, timeout=timeout, interval=0.02, description=f"a host in {path}",
                 abort=lambda: os.getppid() != parent and "the harness that started Locust is gone")
    except WaitTimeout as exc:
        raise SystemExit(f"chaoslab: {exc}") from None
    with open(path) as fh:
        return fh.read().strip()


# ---- the users --------------------------------------------------------------------------
class KVUser(User):
    """One virtual user: a seeded stream of writes and reads over a shared
    :class:`~chaos.traffic.KVClient`, each recorded raw. Concrete users declare ``label``
    and :meth:`make_client`."""

    abstract = True
    wait_time = constant(0)
    label = "kv"  # the request name in Locust's statistics

    @staticmethod
    def make_client(run: _Run) -> KVClient:
        raise NotImplementedError

    def on_start(self) -> None:
        self.run = run = _run_of(self.environment)
        opts = run.options
        n = next(run.users)
        # unique across the run's processes, on this machine (pid) and across machines (the
        # worker index the master gave)
        self.process = f"{self.label}-{run.worker}-{os.getpid()}-{n}"
        self.rng = random.Random(derive(opts.kv_seed, f"user-{self.label}-{run.worker}-{n}"))
        self.pattern, self.ratio = opts.kv_pattern, opts.kv_write_ratio
        self.nkeys, self.size = opts.kv_keys, opts.kv_value_size
        self.prefix = f"{run.namespace}-{opts.kv_pattern}"
        if opts.kv_pattern == "own":
            self.prefix = f"{self.prefix}-{self.process}"
        self.serial = itertools.count()
        self.check = ReadYourWrites()
        self.history = run.history()
        self.kv = run.client(self.label, self.make_client)

    # ---- what to do next, from the user's RNG ----
    def next_key(self) -> str:
        if self.pattern == "hot" and self.rng.random() < HOT_SHARE:
            return f"{self.prefix}-0"
        return f"{self.prefix}-{self.rng.randrange(self.nkeys)}"

    def next_value(self) -> str:
        stamp = f"{self.process}:{next(self.serial)}:"  # unique in the run
        return stamp + "x" * max(0, self.size - len(stamp))

    def operate(self) -> None:
        """One operation: a write, or a read (in ``own``, of a key this user wrote)."""
        if self.rng.random() < self.ratio:
            self.write(self.next_key(), self.next_value())
        elif self.pattern == "own":
            keys = self.check.keys()
            if keys:
                self.read(self.rng.choice(keys))
            else:
                self.write(self.next_key(), self.next_value())
        else:
            self.read(self.next_key())

    # ---- one operation, recorded ----
    def write(self, key: str, value: str) -> None:
        own = self.pattern == "own"
        if own:
            self.check.wrote(key, value, False)  # until acknowledged, whatever happens
        self._record("invoke", "write", key, value)
        started = time.perf_counter()
        try:
            version = self.kv.put(key, value)
        except BaseException as exc:  # noqa: BLE001 - every outcome is recorded, then the user goes on
            self._failed("write", key, value, started, exc)
            return
        elapsed = time.perf_counter() - started
        self._record("ok", "write", key, value, version=version, tries=self.kv.tries())
        if own:
            self.check.wrote(key, value, True)
        self._fire("write", elapsed, len(value), None)

    def read(self, key: str) -> None:
        self._record("invoke", "read", key)
        started = time.perf_counter()
        try:
            value, version = self.kv.get(key)
        except BaseException as exc:  # noqa: BLE001
            self._failed("read", key, None, started, exc)
            return
        elapsed = time.perf_counter() - started
        self._record("ok", "read", key, value, version=version, tries=self.kv.tries())
        self._fire("read", elapsed, len(value or ""), self._verify(key, value))

    def _failed(self, f: str, key: str, value: str | None, started: float,
                exc: BaseException) -> None:
        elapsed = time.perf_counter() - started
        if not isinstance(exc, Exception):  # the user is being stopped mid-operation
            self._record("info", f, key, value, error=INTERRUPTED)
            raise exc
        self._record(outcome(exc), f, key, value, error=f"{type(exc).__name__}: {exc}",
                     tries=self.kv.tries())
        self._fire(f, elapsed, 0, exc)

    def _verify(self, key: str, value: str | None) -> StaleRead | None:
        if self.pattern != "own":
            return None  # others write the same keys: only the history can judge
        problem = self.check.problem(key, value)
        if problem is None:
            return None
        if self.run.stale_logged < 10:  # the details of the first few
            self.run.stale_logged += 1
            log.warning("%s", problem)
        return StaleRead(STALE)

    def _record(self, type_: str, f: str, key: str, value: str | None = None, *,
                error: str | None = None, version: str | None = None,
                tries: tuple[int | None, int | None] = (None, None)) -> None:
        if self.history is not None:
            self.history.add(self.process, type_, f, key, value, error, version=version,
                             attempts=tries[0], requests=tries[1])

    def _fire(self, f: str, seconds: float, size: int, exc: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type=f, name=self.label, response_time=seconds * 1000,
            response_length=size, exception=exc, context={})


def _smart_client(run: _Run) -> KVClient:
    opts = run.options
    status = httpx.get(f"{run.environment.host}/cluster-status", timeout=5).json()
    history = run.history()
    lane = f"{EVENT}smart-client-{os.getpid()}"  # one client, one set of breakers per process
    board = BreakerBoard(opts.kv_history_dir, client=lane, threshold=opts.kv_breaker_threshold,
                         cooldown=opts.kv_breaker_cooldown) if history is not None else None

    def breaker_moved(node: str, old, new) -> None:  # called on the client's loop thread
        if history is not None:
            history.add(lane, "info", "breaker", node, {"from": str(old), "to": str(new)})
        if board is not None:  # the live dashboard's view of this client (chaos.live)
            board.moved(node, old, new)

    if history is not None:  # says that this client records its breakers, and how they are set
        history.add(lane, "info", "breakers", None, {"threshold": opts.kv_breaker_threshold,
                                                     "cooldown": opts.kv_breaker_cooldown})

    return SmartKV(ClientConfig(
        registry=run.environment.host, cluster=ClusterSettings(**status["settings"]),
        request_timeout=opts.kv_timeout, retries=opts.kv_retries, jitter=opts.kv_jitter,
        breaker_threshold=opts.kv_breaker_threshold, breaker_cooldown=opts.kv_breaker_cooldown,
        seed=derive(opts.kv_seed, f"client-{run.worker}")), on_breaker=breaker_moved)


def _gateway_client(run: _Run) -> KVClient:
    opts = run.options
    timeout = opts.kv_timeout * (opts.kv_retries + 1)
    pool = max(opts.num_users or 1, 1)
    if opts.kv_gateways == "nodes":
        members = httpx.get(f"{run.environment.host}/nodes?view=client", timeout=5).json()
        urls = [f"http://{m['address']}" for m in members["members"] if m["status"] != "left"]
        rng = random.Random(derive(opts.kv_seed, f"gateways-{run.worker}"))
        return NodeGatewaysKV(urls, timeout, rng=rng, pool=pool)
    return GatewayKV(run.environment.host, timeout=timeout, pool=pool)


class SmartClientUser(KVUser):
    """Through the smart client (ring routing, breakers, retries, failover); N/W/R from the
    registry's ``/cluster-status``."""

    label = "smart-client"
    tasks = [KVUser.operate]
    make_client = staticmethod(_smart_client)


class GatewayUser(KVUser):
    """Through the registry's gateway, only its HTTP API (``POST /data``, ``GET /data/{key}``)."""

    label = "gateway"
    tasks = [KVUser.operate]
    make_client = staticmethod(_gateway_client)


# ---- the summary ------------------------------------------------------------------------
def _write_report(env, exit_code: int) -> None:
    """A machine-readable summary for CI and tests, written by the process that holds the
    aggregated stats (the master when there are workers)."""
    opts = env.parsed_options
    if opts is None or not opts.kv_report or isinstance(env.runner, WorkerRunner):
        return
    stats = env.stats
    errors = [{"type": e.method, "name": e.name, "error": StatsError.parse_error(e.error),
               "occurrences": e.occurrences} for e in stats.errors.values()]
    report = {
        "exit_code": exit_code,
        "seed": opts.kv_seed,
        "stale_reads": sum(e["occurrences"] for e in errors if STALE in e["error"]),
        "requests": [{"type": e.method, "name": e.name, "count": e.num_requests,
                      "failures": e.num_failures} for e in stats.entries.values()],
        "errors": errors,
    }
    with open(opts.kv_report, "w") as f:
        json.dump(report, f, indent=1)
