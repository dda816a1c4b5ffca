"""The host's side of a run's traffic: Locust, headless, in its own process group.

    with Load(workload, host=ep.registry, seed=seed, directory=run_dir, t0=history.t0) as load:
        load.start()
        ...                           # the nemesis; load.snapshot() for a steady-state gate
        load.wait()                   # stops by itself after the workload's duration
    history = load.history(extra=nemesis_ops)

A runner that knows the workload before the cluster's address launches Locust early, so it
imports itself (about 0.9 s) while the cluster starts::

    load = Load(workload, host=None, ...).launch()    # Locust waits for a host
    runtime.start()
    load.host = runtime.endpoints().registry
    with load:
        load.start()                                  # writes the host; the users start

This module never imports ``locust`` or ``gevent`` (importing Locust monkey-patches the
process): it runs ``python -m locust`` on a tiny locustfile written into ``directory`` that
imports the users of :mod:`chaos.locust` (so it works from an installed package too). Each
Locust process appends its operations to ``directory/history-<host>-<pid>.jsonl``;
:meth:`Load.history` merges them. Locust's own reports go next to them: ``locust_*.csv``,
``locust.html``, ``locust.log``, ``locust.json``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import psutil

from chaos.history import History, Op
from chaos.seeds import derive
from chaos.traffic import Workload
from chaos.wait import WaitTimeout, wait_for

__all__ = ["Load", "LoadError", "USERS"]

USERS = {"smart": "SmartClientUser", "gateway": "GatewayUser"}  # Workload.client -> user class
LOCUSTFILE = "from chaos.locust import GatewayUser, SmartClientUser  # noqa: F401\n"
START_TIMEOUT = 30.0  # seconds for Locust to start its users
MARGIN = 30.0  # after the duration, before the watchdog stops Locust


class LoadError(RuntimeError):
    """Locust did not start, or ended badly; the message ends with its log's tail."""


class Load:
    """A headless Locust run of ``workload`` against ``host`` (the registry's URL), its
    operations recorded under ``directory`` with times on the host's monotonic clock, relative
    to ``t0`` in :meth:`history`. A context manager: leaving it always stops Locust."""

    launches_early = True  # see launch(): the runner starts Locust before the cluster

    def __init__(self, workload: Workload, *, host: str | None, seed: int, directory: Path,
                 t0: float, stop_grace: float = 5.0) -> None:
        self.workload, self.host, self.seed, self.t0 = workload, host, seed, t0
        self.directory = Path(directory)
        self.stop_grace = stop_grace
        self.namespace = f"kv{derive(seed, 'workload')}-{uuid.uuid4().hex[:6]}"
        self._proc: subprocess.Popen | None = None
        self._users_started = False
        self._awaits_host = False  # launched without a host: start() writes it to host_file
        self._cpu_before = 0.0
        self._started = self._ended = 0.0
        self._cpu: dict[int, float] = {}  # pid -> CPU seconds last seen (the watchdog samples)
        self._reaped_cpu = 0.0  # of the whole tree, from wait4 when Locust exits
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "locust.log"

    @property
    def report_path(self) -> Path:
        return self.directory / "locust.json"

    @property
    def host_file(self) -> Path:
        return self.directory / "locust.host"

    def command(self) -> list[str]:
        """The Locust command line (``-f`` is the locustfile this writes at start; without a
        host yet, Locust waits for one in :attr:`host_file`)."""
        w = self.workload
        where = ["--host", self.host] if self.host else ["--kv-host-file", str(self.host_file)]
        cmd = [sys.executable, "-m", "locust", "-f", str(self.directory / "locustfile.py"),
               "--headless", *where, "-u", str(w.users), "-r", str(w.users),
               "-t", f"{math.ceil(w.duration)}s", "--stop-timeout", f"{self.stop_grace:g}",
               "--only-summary", "--csv", str(self.directory / "locust"),
               "--html", str(self.directory / "locust.html"),
               "--kv-seed", str(self.seed), "--kv-pattern", w.pattern,
               "--kv-keys", str(w.keys), "--kv-write-ratio", f"{w.write_ratio:g}",
               "--kv-value-size", str(w.value_size), "--kv-timeout", f"{w.request_timeout:g}",
               "--kv-retries", str(w.retries), "--kv-namespace", self.namespace,
               "--kv-gateways", w.gateways, "--kv-jitter", w.jitter,
               "--kv-breaker-threshold", str(w.breaker_threshold),
               "--kv-breaker-cooldown", f"{w.breaker_cooldown:g}",
               "--kv-history-dir", str(self.directory), "--kv-report", str(self.report_path)]
        if w.processes > 1:
            cmd += ["--processes", str(w.processes)]
        return [*cmd, USERS[w.client]]

    # ---- lifecycle ------------------------------------------------------------------------
    def launch(self) -> Load:
        """Start Locust's process without waiting for it; with no host yet it imports itself
        and then waits for :meth:`start` to give it one. Returns self."""
        if self._proc is not None:
            raise LoadError("this Load was already started; make a new one per run")
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in [*self.paths(), self.host_file]:  # an earlier run's, in a reused directory
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        (self.directory / "locustfile.py").write_text(LOCUSTFILE)
        with open(self.log_path, "wb") as log:  # a file, not a pipe nobody reads until the end
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        self._awaits_host = not self.host
        self._started = time.monotonic()
        self._watchdog = threading.Thread(target=self._watch, name="chaoslab-load", daemon=True)
        self._watchdog.start()
        return self

    def start(self) -> Load:
        """Start Locust (or, when :meth:`launch` ran without a host, hand it :attr:`host`)
        and wait until its processes have started their users; raises :class:`LoadError`
        with the log's tail if it exits or does not start in time."""
        if self._proc is None:
            self.launch()
        elif self._users_started:
            raise LoadError("this Load was already started; make a new one per run")
        if not self.host:
            self.stop()
            raise LoadError("no host to send the traffic to: set Load.host before start()")
        if self._awaits_host:
            written = self.host_file.with_suffix(".tmp")
            written.write_text(self.host)
            written.replace(self.host_file)  # whole, never half-written
            self._started = time.monotonic()  # the time limit and the CPU share count from now
            self._cpu_before = self.cpu_seconds  # its start-up, while the cluster started
        self._users_started = True
        expected = min(self.workload.users, self.workload.processes)
        try:
            wait_for(lambda: len(self.paths()) >= expected, timeout=START_TIMEOUT,
                     description=f"{expected} Locust process(es) recording operations",
                     abort=self._exited)
        except WaitTimeout as exc:
            self.stop()
            raise LoadError(f"Locust did not start: {exc}\n{self.log_tail()}") from None
        return self

    def _exited(self) -> str | None:
        code = self._poll()
        return None if code is None else f"Locust exited with code {code}"

    def wait(self, timeout: float | None = None) -> int:
        """Wait for Locust to end by itself (its duration); its exit code (0: no failed
        request, 1: some failed, as expected under faults). After ``timeout`` (default: the
        time left of the duration plus a margin) it is stopped."""
        if self._proc is None:
            raise LoadError("start() the load first")
        if timeout is None:
            timeout = max(self._deadline() - time.monotonic(), 0.0)
        with contextlib.suppress(WaitTimeout):
            wait_for(lambda: self._poll() is not None, timeout=timeout, interval=0.1,
                     description="Locust to finish")
        code = self._poll()
        return self.stop() if code is None else code

    def stop(self) -> int:
        """Stop Locust now (SIGTERM: its users stop, its reports are written), killing its
        process group if it does not end in time. Idempotent; the exit code."""
        if self._proc is None:
            return 0
        if self._poll() is None:
            self._signal(signal.SIGTERM)
            try:
                wait_for(lambda: self._poll() is not None, timeout=self.stop_grace + 10,
                         interval=0.05, description="Locust to stop after SIGTERM")
            except WaitTimeout:
                self._signal(signal.SIGKILL)
                wait_for(lambda: self._poll() is not None, timeout=10, interval=0.05,
                         description="Locust to die after SIGKILL")
        self._signal(signal.SIGKILL)  # workers left behind, if any
        self._done.set()
        return self._proc.returncode

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- results --------------------------------------------------------------------------
    def paths(self) -> list[str]:
        """The history files written so far (one per Locust process that ran users)."""
        return sorted(str(p) for p in self.directory.glob("history-*.jsonl"))

    def snapshot(self) -> History:
        """The operations recorded so far (flushed at least every 0.25 s), merged."""
        return History.load(self.paths(), t0=self.t0)

    def history(self, extra: Iterable[Op] = ()) -> History:
        """The run's history: every Locust process's operations and ``extra`` (the
        nemesis's, same ``t0``), merged in time order. Call after :meth:`wait`."""
        return History.load(self.paths(), t0=self.t0, extra=extra)

    @property
    def exit_code(self) -> int | None:
        return None if self._proc is None else self._poll()

    @property
    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the Locust process tree so far (sampled now while it
        runs, so the difference of two readings is what it spent in between)."""
        if self._proc is not None and self._poll() is None:
            self._sample()
        with self._lock:
            return max(self._reaped_cpu, sum(self._cpu.values()))

    @property
    def cpu_share(self) -> float:
        """:attr:`cpu_seconds` over the machine's CPU time during the run (wall seconds x
        CPUs): 0.5 on a 2-CPU machine means Locust took one whole CPU. Launched early, the
        run counts from :meth:`start`, without the start-up spent before it."""
        end = self._ended or time.monotonic()
        wall = max(end - self._started, 1e-9) if self._started else 0.0
        spent = self.cpu_seconds - self._cpu_before
        return spent / (wall * (os.cpu_count() or 1)) if wall else 0.0

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # ---- internals ------------------------------------------------------------------------
    def _deadline(self) -> float:
        return self._started + self.workload.duration + self.stop_grace + MARGIN

    def _poll(self) -> int | None:
        """The exit code if Locust ended (reaping it with wait4 for its tree's CPU time)."""
        proc = self._proc
        with self._lock:
            if proc.returncode is None:
                try:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere
                    pid, status, usage = proc.pid, 0, None
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    self._ended = time.monotonic()
                    if usage is not None:  # the master and the workers it reaped
                        self._reaped_cpu = usage.ru_utime + usage.ru_stime
            return proc.returncode

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)  # its own session: the master and its workers

    def _sample(self) -> None:
        try:
            root = psutil.Process(self._proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for p in tree:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            with self._lock:
                self._cpu[p.pid] = max(self._cpu.get(p.pid, 0.0), t.user + t.system)

    def _watch(self) -> None:
        """Sample the tree's CPU; stop Locust if it outlives its deadline (never hangs)."""
        while not self._done.wait(0.5):
            if self._poll() is not None:
                return
            self._sample()
            if time.monotonic() > self._deadline():
                self._signal(signal.SIGTERM)
                if self._done.wait(self.stop_grace + 10):
                    return
                self._signal(signal.SIGKILL)
                return
