"""Run the proxy server as a local child process on a free port, and always stop it.

    with ProxyServerProcess(seed=7) as server:
        client = server.client()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from chaos.toxiproxy import Toxiproxy, ToxiproxyError
from chaos.wait import WaitTimeout, wait_for
from system.launch import free_port

__all__ = ["ProxyServerProcess", "ProxyServerError", "free_port"]


class ProxyServerError(RuntimeError):
    """The server process did not become ready."""


class ProxyServerProcess:
    """``python -m chaos.proxy`` as a child process; a context manager that kills it on exit."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 seed: int | None = None, config: Path | None = None,
                 log_level: str = "warning", ready_timeout: float = 15.0,
                 log_path: Path | None = None, attempts: int = 3) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.config = config
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.log_path = log_path
        self.attempts = attempts if port is None else 1
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def client(self, *, timeout: float = 5.0) -> Toxiproxy:
        return Toxiproxy(self.url, timeout=timeout)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "chaos.proxy", "--host", self.host, "--port", str(self.port),
               "--log-level", self.log_level]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd

    def start(self) -> ProxyServerProcess:
        fixed_port = self.port
        for attempt in range(self.attempts):
            self.port = fixed_port or free_port()
            try:
                self._spawn_and_wait()
                return self
            except ProxyServerError:
                self.stop()
                if attempt + 1 >= self.attempts:
                    raise
        return self

    def _spawn_and_wait(self) -> None:
        if self.log_path is not None:
            self._log_file = open(self.log_path, "a+b")  # noqa: SIM115 - closed in stop()
        else:
            self._log_file = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.command(), stdout=self._log_file,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        def ready() -> bool:
            try:
                probe.version()
                return True
            except ToxiproxyError:
                return False

        def exited() -> str | None:
            if self.proc.poll() is None:
                return None
            return f"chaos.proxy exited with {self.proc.returncode}:\n{self.output()}"

        with self.client(timeout=1.0) as probe:
            try:
                wait_for(ready, timeout=self.ready_timeout, interval=0.02, abort=exited,
                         description=f"chaos.proxy on {self.url}")
            except WaitTimeout as exc:
                raise ProxyServerError(f"{exc}\n{self.output()}") from None

    def output(self) -> str:
        """What the server wrote so far (stdout and stderr)."""
        if self._log_file is None:
            return ""
        try:
            self._log_file.flush()
            self._log_file.seek(0)
            return self._log_file.read().decode(errors="replace")[-4000:]
        except (OSError, ValueError):
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ProxyServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
