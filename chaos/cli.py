"""The ``chaoslab`` command: ``run`` (the main job), ``up``, ``status``, ``down``."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from chaos.runtime.base import ClusterSpec
from system.config import ClientConfig, ClusterSettings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Chaos-test a Dynamo-style key-value cluster.")
console = Console()
STATE = Path(".chaoslab") / "state.json"


def make_runtime(kind: str, spec: ClusterSpec, **kw):
    if kind == "auto":
        from chaos.runtime.docker import engine_answers

        kind = "docker" if engine_answers() and "toxiproxy_url" not in kw else "local"
    if kind == "docker":
        from chaos.runtime.docker import DockerRuntime

        if "toxiproxy_url" in kw:
            raise typer.BadParameter("--toxiproxy-url is for the local runtime; the docker "
                                     "runtime runs its proxy in a container")

        return DockerRuntime(spec, **kw)
    if kind != "local":
        raise typer.BadParameter(f"unknown runtime {kind!r}: use local, docker or auto")
    from chaos.runtime.local import LocalRuntime

    return LocalRuntime(spec, **kw)


RuntimeOpt = Annotated[str, typer.Option("--runtime", help="local, docker, or auto (docker when "
                                         "an engine answers)")]
ToxiproxyOpt = Annotated[str | None, typer.Option(
    "--toxiproxy-url", help="local runtime: use this Toxiproxy server (e.g. the real one) "
                            "instead of starting chaoslab's")]


@app.command()
def run(
    runtime: RuntimeOpt = "auto",
    seed: Annotated[int | None, typer.Option(help="replay a run (default: random, printed)")] = None,
    duration: Annotated[float, typer.Option(help="seconds of traffic")] = 12.0,
    concurrency: int = 8,
    fault: Annotated[str, typer.Option(help="kill or pause")] = "kill",
    target: str = "node-1",
    w: int = 2,
    r: int = 2,
    storage: str = "durable",
    mesh: Annotated[bool, typer.Option(help="every link through its own fault proxy")] = True,
    report: Annotated[str, typer.Option(help="directory for the report")] = "reports/latest",
    toxiproxy_url: ToxiproxyOpt = None,
    verbose: bool = False,
) -> None:
    """Bring up the cluster, kill (or pause) a node under load, heal it, check, report.

    Exit code 0 when every check is valid, 1 when one is invalid, 2 when unknown."""
    from chaos.report import write_report
    from chaos.scenario import Scenario, Workload, run_scenario

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    settings = ClusterSettings(w=w, r=r, heartbeat_interval=0.5)
    spec = ClusterSpec(settings=settings, storage=storage, mesh=mesh, seed=seed)
    sc = Scenario(name=f"{fault}-{target}", cluster=spec, fault=fault, target=target,
                  workload=Workload(concurrency=concurrency, duration=duration),
                  fault_at=duration * 0.25, heal_at=duration * 0.65,
                  client=ClientConfig(cluster=settings, request_timeout=0.5, retries=3))
    rt = make_runtime(runtime, spec, **({"toxiproxy_url": toxiproxy_url} if toxiproxy_url else {}))
    console.print(f"[bold]chaoslab run[/] scenario={sc.name} runtime={rt.name} seed={seed}")
    result = run_scenario(sc, rt, seed=seed)
    paths = write_report(result, report)
    table = Table("check", "verdict", "summary")
    for v in result.verdict.evidence.values():
        style = {"valid": "green", "invalid": "red"}.get(v["valid"], "yellow")
        table.add_row(v["name"], f"[{style}]{v['valid']}[/]", v["summary"])
    console.print(table)
    console.print(f"verdict: [bold]{result.verdict.valid.upper()}[/]  seed={seed}  "
                  f"report: {paths['report.html']}")
    raise typer.Exit({"valid": 0, "invalid": 1}.get(result.verdict.valid, 2))


@app.command()
def up(
    runtime: RuntimeOpt = "auto",
    nodes: int = 3,
    mesh: Annotated[bool, typer.Option(help="every link through its own fault proxy")] = True,
    registry_port: Annotated[int | None, typer.Option(help="default: a free port")] = None,
    storage: str = "durable",
    toxiproxy_url: ToxiproxyOpt = None,
) -> None:
    """Start the registry and nodes, print where they are, and stay up until Ctrl-C
    (or ``chaoslab down``)."""
    logging.basicConfig(level=logging.WARNING)
    spec = ClusterSpec(nodes=nodes, mesh=mesh, storage=storage)
    kw = {"registry_port": registry_port} if registry_port and runtime == "local" else {}
    if toxiproxy_url:
        kw["toxiproxy_url"] = toxiproxy_url
    rt = make_runtime(runtime, spec, **kw)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        ep = rt.start()
        STATE.parent.mkdir(exist_ok=True)
        STATE.write_bytes(orjson.dumps({"pid": os.getpid(), "runtime": rt.name, **ep.as_json(),
                                        "admin_token": ep.admin_token}))
        table = Table("service", "address (from this host)")
        table.add_row("registry / gateway", ep.registry)
        for nid, url in ep.nodes.items():
            table.add_row(nid, url)
        if ep.proxy_api:
            table.add_row("toxiproxy API", ep.proxy_api)
        console.print(table)
        console.print(f"admin token: {ep.admin_token}\nrunning ({rt.name}); Ctrl-C or "
                      "`chaoslab down` stops everything")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping...")
        rt.stop()
        with contextlib.suppress(FileNotFoundError):
            STATE.unlink()


def _state() -> dict:
    try:
        return orjson.loads(STATE.read_bytes())
    except FileNotFoundError:
        console.print("no cluster is up from this directory (no .chaoslab/state.json)")
        raise typer.Exit(1) from None


@app.command()
def status(
    json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    registry: Annotated[str | None, typer.Option(help="registry URL (default: from `up`)")] = None,
) -> None:
    """Show each node's status, the cluster's health and the ring."""
    url = registry or _state()["registry_direct"]
    try:
        data = httpx.get(f"{url}/cluster-status", timeout=5).json()
    except httpx.HTTPError as exc:
        console.print(f"registry {url} did not answer: {exc}")
        raise typer.Exit(1) from None
    if json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table("node", "status", "since heartbeat (s)", "address", "ring share")
    for n in data["nodes"]:
        share = data["ring"]["ownership"].get(n["id"])
        table.add_row(n["id"], n["status"], f"{n['seconds_since_heartbeat']:.1f}", n["address"],
                      "-" if share is None else f"{share:.1%}")
    console.print(table)
    s = data["settings"]
    console.print(f"health: [bold]{data['health']}[/]  N={s['n']} W={s['w']} R={s['r']}")


@app.command()
def down(timeout: float = 30.0) -> None:
    """Stop the cluster started by ``chaoslab up`` from this directory."""
    state = _state()
    pid = state["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        console.print(f"`chaoslab up` (pid {pid}) is gone; removing stale state")
        STATE.unlink()
        return
    from chaos.wait import WaitTimeout, wait_for

    try:  # `up` removes its state file once everything it started is stopped
        wait_for(lambda: not STATE.exists(), timeout=timeout, interval=0.1,
                 description=f"`chaoslab up` (pid {pid}) to stop")
    except WaitTimeout as exc:
        console.print(str(exc))
        raise typer.Exit(1) from None
    console.print("stopped")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
