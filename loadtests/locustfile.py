"""Locust traffic against a chaoslab cluster, through the smart client and through the gateway.

    ./chaoslab up                                    # prints the registry URL
    .venv/bin/locust -f loadtests/locustfile.py --host http://127.0.0.1:PORT \\
        --headless -u 16 -r 16 -t 60s [SmartClientUser|GatewayUser] [--kv-write-ratio 0.5]

Every virtual user writes to keys of its own and reads them back, so besides throughput each
read checks read-your-writes: a read must return the last acknowledged value of the key (or
the value of a later write that failed, since a failed write may still have reached a replica).
Anything else is reported as a failure named "stale read". Locust exits 1 when any request
failed, so a swarm doubles as a consistency check.

The smart client is shared by the users of a process (one connection pool and one set of
circuit breakers, like an application's client). Its N/W/R come from the registry's
``/cluster-status``. ``--kv-seed`` seeds the keys, values, the read/write mix and the client's
jitter; it is printed at the start. ``--kv-report FILE`` writes a JSON summary at the end
(exit code, seed, requests and failures per kind, stale reads, errors).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import time
import uuid

import gevent.lock
import httpx
from locust import FastHttpUser, User, constant, events
from locust.runners import WorkerRunner
from locust.stats import StatsError

from chaos.checkers import ReadYourWrites
from system.client import QuorumError, SyncClient
from system.config import ClientConfig, ClusterSettings

log = logging.getLogger("chaoslab.locust")


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


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--kv-keys", type=_positive, default=100, help="keys per virtual user")
    parser.add_argument("--kv-write-ratio", type=_ratio, default=0.5, help="share of writes")
    parser.add_argument("--kv-value-size", type=_positive, default=64,
                        help="bytes per value (at most 1 MiB, the cluster's limit)")
    parser.add_argument("--kv-seed", type=int, default=None, help="seed (default: random)")
    parser.add_argument("--kv-report", default=None,
                        help="write a JSON summary here at the end (counts, stale reads, errors)")


_run: dict = {"environment": None, "stale_reads_logged": 0}
STALE = "stale read"  # the failure's name: one row in Locust's error report however many


@events.init.add_listener
def _init(environment, **_kw) -> None:
    _run["environment"] = environment
    opts = environment.parsed_options
    if opts is not None and opts.kv_seed is None:
        opts.kv_seed = random.SystemRandom().randrange(2**32)
    if opts is not None and not isinstance(environment.runner, WorkerRunner):
        log.warning("chaoslab locust seed %d: rerun with --kv-seed %d", opts.kv_seed, opts.kv_seed)


class StaleRead(AssertionError):
    """A read did not return the last acknowledged write of the key."""


class Unavailable(Exception):
    """A quorum was not reached (the smart client's QuorumError, without the key)."""


class Workload:
    """One user's keys and values, from its seeded RNG, and what its reads may return."""

    def __init__(self, rng: random.Random, prefix: str, keys: int, value_size: int) -> None:
        self.rng, self.prefix, self.keys, self.value_size = rng, prefix, keys, value_size
        self.check = ReadYourWrites()
        self._serial = itertools.count()

    def next_write(self) -> tuple[str, str]:
        key = f"{self.prefix}-{self.rng.randrange(self.keys)}"
        stamp = f"{next(self._serial)}:"
        return key, stamp + "x" * max(0, self.value_size - len(stamp))

    def next_read(self) -> str | None:
        keys = self.check.keys()
        return self.rng.choice(keys) if keys else None

    def verify(self, key: str, value: str | None) -> None:
        problem = self.check.problem(key, value)
        if problem:
            if _run["stale_reads_logged"] < 10:  # the details of the first few
                _run["stale_reads_logged"] += 1
                log.warning("%s", problem)
            raise StaleRead(STALE)


_users = itertools.count(1)


class _KVUser:
    """The task shared by both kinds of user: write or read one of its own keys."""

    def setup_workload(self, kind: str) -> None:
        opts = self.environment.parsed_options
        n = next(_users)
        self.write_ratio = opts.kv_write_ratio
        self.rng = random.Random(f"{opts.kv_seed}-{kind}-{n}")
        # keys unique to this user, in this process, in this run: the seed drives what a user
        # does, not whose keys it touches (workers share the seed; a replay meets old data)
        prefix = f"{kind}-{uuid.uuid4().hex[:10]}"
        self.work = Workload(self.rng, prefix, opts.kv_keys, opts.kv_value_size)

    def operate(self) -> None:
        key = None if self.rng.random() < self.write_ratio else self.work.next_read()
        if key is None:
            key, value = self.work.next_write()
            self.work.check.wrote(key, value, False)  # until acknowledged, whatever happens
            if self.write(key, value):
                self.work.check.wrote(key, value, True)
        else:
            self.read(key)


class SmartClientUser(_KVUser, User):
    tasks = [_KVUser.operate]
    wait_time = constant(0)
    _client: SyncClient | None = None
    _lock = gevent.lock.Semaphore()

    def on_start(self) -> None:
        self.setup_workload("sc")
        with SmartClientUser._lock:
            if SmartClientUser._client is None:
                status = httpx.get(f"{self.host}/cluster-status", timeout=5).json()
                settings = ClusterSettings(**status["settings"])
                SmartClientUser._client = SyncClient(ClientConfig(
                    registry=self.host, cluster=settings, seed=self.environment.parsed_options.kv_seed))
        self.client = SmartClientUser._client

    def _fire(self, kind: str, started: float, size: int, exc: Exception | None) -> None:
        if isinstance(exc, QuorumError):  # one row per kind of failure, not one per key
            exc = Unavailable(exc.as_json()["error"])
        self.environment.events.request.fire(
            request_type=kind, name="smart-client", response_time=(time.perf_counter() - started) * 1000,
            response_length=size, exception=exc, context={})

    def write(self, key: str, value: str) -> bool:
        started = time.perf_counter()
        try:
            self.client.put(key, value)
        except Exception as exc:  # noqa: BLE001 - every failure is a failed request
            self._fire("write", started, 0, exc)
            return False
        self._fire("write", started, len(value), None)
        return True

    def read(self, key: str) -> None:
        started = time.perf_counter()
        try:
            res = self.client.get(key)
            self.work.verify(key, res.value)
        except Exception as exc:  # noqa: BLE001
            self._fire("read", started, 0, exc)
        else:
            self._fire("read", started, len(res.value or ""), None)


@events.test_stop.add_listener
def _close_client(**_kw) -> None:
    client, SmartClientUser._client = SmartClientUser._client, None
    if client is not None:
        client.close()


class GatewayUser(_KVUser, FastHttpUser):
    """Through the registry's gateway (``POST /data``, ``GET /data/{key}``)."""

    tasks = [_KVUser.operate]
    wait_time = constant(0)

    def on_start(self) -> None:
        self.setup_workload("gw")

    def write(self, key: str, value: str) -> bool:
        with self.client.post("/data", json={"key": key, "value": value}, name="gateway",
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(_describe("write", resp))
                return False
            return True

    def read(self, key: str) -> None:
        with self.client.get(f"/data/{key}", name="gateway", catch_response=True) as resp:
            if resp.status_code == 404:
                value = None
            elif resp.status_code == 200:
                value = resp.json()["value"]
            else:
                resp.failure(_describe("read", resp))
                return
            try:
                self.work.verify(key, value)
            except StaleRead:
                resp.failure(STALE)
            else:
                resp.success()


def _describe(op: str, resp) -> str:
    """A failure's name: the status and the error, without what varies per request."""
    if not resp.status_code:  # no HTTP answer at all (connection refused, reset, timeout)
        return f"{op}: {type(resp.error).__name__}" if resp.error else f"{op}: no answer"
    try:
        error = resp.json().get("error", "")
    except Exception:  # noqa: BLE001 - not JSON
        error = (resp.text or "")[:80]
    return f"{op} {resp.status_code}: {error}"


@events.quit.add_listener
def _write_report(exit_code: int, **_kw) -> None:
    """The end of the run, after the users stopped (time limit, Ctrl-C, SIGTERM): a
    machine-readable summary for CI and tests, written by the process that holds the
    aggregated stats (the master when there are workers)."""
    env = _run["environment"]
    opts = env.parsed_options if env is not None else None
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
