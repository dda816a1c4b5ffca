"""The ``chaoslab`` command: ``run`` (the main job), ``scenarios``, ``up``, ``status``, ``down``.

Exit codes: 0 every check valid, 1 a check invalid, 2 undecided (unknown) or a usage error
(a bad option, name or value: one line on stderr, nothing started, nothing written).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Chaos-test a Dynamo-style key-value cluster.")
STATE = Path(".chaoslab") / "state.json"
RUNTIMES = ("auto", "local", "docker", "external")


class UsageProblem(Exception):
    """A bad option, name or value: reported in one line, exit code 2, nothing started."""


def _console() -> Console:
    return Console(highlight=False)


RuntimeOpt = Annotated[str, typer.Option("--runtime", help="local, docker, auto (docker when "
                                         "an engine answers and the image can be had), or "
                                         "external (a cluster started by someone else)")]
ToxiproxyOpt = Annotated[str | None, typer.Option(
    "--toxiproxy-url", help="local runtime: use this Toxiproxy server (e.g. the real one) "
                            "instead of starting chaoslab's")]


def _open_runtime(kind: str, spec, *, toxiproxy_url: str | None, registry_port: int | None = None,
                  say=None, gateway_url: str | None = None, external_file: str | None = None):
    """The runtime, or a :class:`UsageProblem` before anything starts."""
    if kind not in RUNTIMES:
        raise UsageProblem(f"unknown runtime {kind!r}: choose one of {', '.join(RUNTIMES)}")
    from chaos.runtime import RuntimeUnavailable, open_runtime

    try:
        return open_runtime(kind, spec, toxiproxy_url=toxiproxy_url,
                            registry_port=registry_port, progress=say,
                            gateway_url=gateway_url, external_file=external_file)
    except RuntimeUnavailable as exc:
        raise UsageProblem(str(exc)) from None


def _external_control(kind: str, gateway_url: str | None, external_file: str | None):
    """The external cluster's control file read (pure), to plan the scenario against what
    it enables; None for the other runtimes."""
    if kind != "external":
        if gateway_url or external_file:
            raise UsageProblem("--gateway-url and --external-file only work with --runtime "
                               "external")
        return None
    from chaos.runtime.external import ControlFileError, ExternalControl

    try:
        return ExternalControl.load(gateway_url, external_file)
    except ControlFileError as exc:
        raise UsageProblem(str(exc)) from None


def _build_scenario(name: str | None, scenario_file: str | None, *, seed: int | None,
                    duration: float | None, users: int | None, processes: int | None,
                    client: str | None, pattern: str | None, faults: list[str],
                    nodes: int | None, n: int | None, w: int | None, r: int | None,
                    storage: str | None, versions: str | None, mesh: bool | None,
                    repair: str | None = None, limits=None):
    """The scenario the options describe, checked and planned (pure: nothing starts);
    ``limits``: what an external cluster's control file enables (refused steps are usage
    errors)."""
    from chaos.catalog import DEFAULT, scenario_named
    from chaos.faults import FaultError
    from chaos.nemesis import Schedule, ScheduleError
    from chaos.scenario import Scenario, ScenarioError
    from system.config import ClusterSettings

    try:
        if scenario_file:
            if name:
                raise UsageProblem("give a scenario name or --scenario-file, not both")
            try:
                sc = Scenario.from_json(orjson.loads(Path(scenario_file).read_bytes())["scenario"])
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise UsageProblem(f"cannot read a recorded scenario from {scenario_file}: "
                                   f"{exc}") from None
        else:
            sc = scenario_named(name or DEFAULT)
        sc = sc.but(seed=random.SystemRandom().randrange(2**31) if seed is None else seed)
        if seed is None and scenario_file:
            sc = sc.but(seed=Scenario.from_json(
                orjson.loads(Path(scenario_file).read_bytes())["scenario"]).seed)
        if duration is not None:
            sc = sc.with_duration(duration)
        wl = {k: v for k, v in (("users", users), ("processes", processes), ("client", client),
                                ("pattern", pattern)) if v is not None}
        if wl:
            sc = sc.but(workload=dataclasses.replace(sc.workload, **wl))
        quorum = {k: v for k, v in (("n", n), ("w", w), ("r", r), ("versions", versions),
                                    ("repair", repair)) if v is not None}
        if quorum:
            fields = {f.name: getattr(sc.cluster.settings, f.name)
                      for f in dataclasses.fields(ClusterSettings)}
            sc = sc.but(cluster=dataclasses.replace(sc.cluster,
                                                    settings=ClusterSettings(**(fields | quorum))))
        spec = {k: v for k, v in (("nodes", nodes), ("storage", storage), ("mesh", mesh))
                if v is not None}
        if spec:
            sc = sc.but(cluster=dataclasses.replace(sc.cluster, **spec))
        if faults:
            at = sc.steady_state + 0.1 * sc.workload.duration
            sc = sc.but(name=sc.name if name or scenario_file else "custom",
                        schedule=Schedule.parse(faults, at=at, duration=0.4 * sc.workload.duration))
        if limits is not None:  # the refusal reads the runtime's mesh from the spec
            from chaos.runtime.external import ExternalRuntime

            limits = ExternalRuntime(sc.cluster, limits)
        return sc.plan(limits)
    except (ScenarioError, FaultError, ScheduleError, ValueError) as exc:
        raise UsageProblem(str(exc)) from None


def _replay_command(sc, report: str) -> str:
    return f"chaoslab run --scenario-file {shlex.quote(str(Path(report) / 'verdict.json'))}"


@app.command()
def run(
    scenario: Annotated[str | None, typer.Argument(help="a name from `chaoslab scenarios` "
                                                        "(default: kill-one)")] = None,
    runtime: RuntimeOpt = "auto",
    seed: Annotated[int | None, typer.Option(help="replay a run (default: random, printed)")] = None,
    duration: Annotated[float | None, typer.Option(help="seconds of traffic (the schedule "
                                                        "stretches with it)")] = None,
    users: Annotated[int | None, typer.Option("--users", "--concurrency",
                                              help="Locust virtual users")] = None,
    processes: Annotated[int | None, typer.Option(help="Locust worker processes")] = None,
    client: Annotated[str | None, typer.Option(help="smart or gateway")] = None,
    pattern: Annotated[str | None, typer.Option(help="keys: own, shared or hot")] = None,
    fault: Annotated[list[str] | None, typer.Option(
        "--fault", help="FAULT[@AT][+DURATION], repeatable, e.g. kill:node-1@3+4 or "
                        "partition:isolate:node-2; replaces the scenario's schedule")] = None,
    nodes: Annotated[int | None, typer.Option(help="number of nodes")] = None,
    n: Annotated[int | None, typer.Option(help="replication factor N")] = None,
    w: Annotated[int | None, typer.Option(help="write quorum W")] = None,
    r: Annotated[int | None, typer.Option(help="read quorum R")] = None,
    storage: Annotated[str | None, typer.Option(help="durable or memory (weakened)")] = None,
    versions: Annotated[str | None, typer.Option(help="hlc or wallclock (weakened)")] = None,
    repair: Annotated[str | None, typer.Option(
        help="hinted handoff and read repair: on, or off (weakened)")] = None,
    mesh: Annotated[bool | None, typer.Option("--mesh/--no-mesh",
                                              help="every link through its own proxy")] = None,
    report: Annotated[str, typer.Option(help="directory for the artifacts")] = "reports/latest",
    scenario_file: Annotated[str | None, typer.Option(
        help="replay the scenario recorded in a verdict.json")] = None,
    toxiproxy_url: ToxiproxyOpt = None,
    gateway_url: Annotated[str | None, typer.Option(
        help="--runtime external: the gateway of a cluster started by someone else")] = None,
    external_file: Annotated[str | None, typer.Option(
        help="--runtime external: the control file (TOML or JSON) saying how to kill, pause "
             "and restart its services (docs/external.md)")] = None,
    verbose: bool = False,
) -> None:
    """Bring up the cluster, run a chaos scenario under Locust load, print the verdict and
    write the artifacts. Exit code 0 valid, 1 invalid, 2 unknown or a usage error."""
    from chaos.report import write_report
    from chaos.scenario import run as run_scenario

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    control = _external_control(runtime, gateway_url, external_file)
    sc = _build_scenario(scenario, scenario_file, seed=seed, duration=duration, users=users,
                         processes=processes, client=client, pattern=pattern,
                         faults=list(fault or ()), nodes=nodes, n=n, w=w, r=r, storage=storage,
                         versions=versions, mesh=mesh, repair=repair, limits=control)
    console = _console()
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {message}")

    rt = _open_runtime(runtime, dataclasses.replace(sc.cluster, seed=sc.seed),
                       toxiproxy_url=toxiproxy_url, say=say, gateway_url=gateway_url,
                       external_file=external_file)
    s = sc.cluster.settings
    console.print(f"[bold]chaoslab run[/] {sc.name} runtime={rt.name} seed={sc.seed} "
                  f"N={s.n} W={s.w} R={s.r} storage={sc.cluster.storage}")
    replay = _replay_command(sc, report)
    try:
        result = run_scenario(sc, rt, directory=report, progress=say)
    except KeyboardInterrupt:
        console.print(f"interrupted; faults healed and the cluster stopped. seed={sc.seed}")
        raise typer.Exit(130) from None
    paths = write_report(result, report, replay=replay)
    table = Table("check", "verdict", "summary")
    for v in result.verdict.parts or (result.verdict,):
        style = {"valid": "green", "invalid": "red"}.get(str(v.valid), "yellow")
        table.add_row(v.name, f"[{style}]{v.valid}[/]", v.summary)
    console.print(table)
    for error in result.errors:
        console.print(f"[yellow]nemesis error:[/] {error}")
    ops = result.load.get("operations")
    if ops:
        console.print(f"traffic: {ops} operations, {result.load.get('ops_per_s', 0):.0f}/s; "
                      f"Locust CPU share {result.load.get('cpu_share', 0):.0%}")
    console.print(f"verdict: [bold]{str(result.verdict.valid).upper()}[/]  seed={sc.seed}  "
                  f"report: {paths['report.html']}\nreplay: {replay}")
    raise typer.Exit(result.verdict.valid.exit_code)


@app.command()
def scenarios() -> None:
    """List the named scenarios, one line each."""
    from chaos.catalog import DEFAULT, SCENARIOS

    width = max(map(len, SCENARIOS))
    for name, sc in SCENARIOS.items():
        faults = ", ".join(f"{s.fault.describe()}@{s.at:g}+{s.duration:g}"
                           for s in sc.schedule.steps) or "no faults"
        mark = "*" if name == DEFAULT else " "
        sys.stdout.write(f"{name:<{width}} {mark} {sc.description} [{faults}]\n")


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
    from chaos.runtime.base import ClusterSpec
    from chaos.scenario import STORAGES

    logging.basicConfig(level=logging.WARNING)
    if nodes < 1:
        raise UsageProblem(f"nodes must be at least 1, got {nodes}")
    if storage not in STORAGES:
        raise UsageProblem(f"unknown storage {storage!r}: choose one of {', '.join(STORAGES)}")
    console = _console()
    spec = ClusterSpec(nodes=nodes, mesh=mesh, storage=storage)
    rt = _open_runtime(runtime, spec, toxiproxy_url=toxiproxy_url, registry_port=registry_port,
                       say=console.print)
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
        _console().print("no cluster is up from this directory (no .chaoslab/state.json)")
        raise typer.Exit(1) from None


@app.command()
def status(
    json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    registry: Annotated[str | None, typer.Option(help="registry URL (default: from `up`)")] = None,
) -> None:
    """Show each node's status, the cluster's health and the ring."""
    console = _console()
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
    for node in data["nodes"]:
        share = data["ring"]["ownership"].get(node["id"])
        table.add_row(node["id"], node["status"], f"{node['seconds_since_heartbeat']:.1f}",
                      node["address"], "-" if share is None else f"{share:.1%}")
    console.print(table)
    s = data["settings"]
    console.print(f"health: [bold]{data['health']}[/]  N={s['n']} W={s['w']} R={s['r']}")


@app.command()
def down(timeout: float = 30.0) -> None:
    """Stop the cluster started by ``chaoslab up`` from this directory."""
    from chaos.wait import WaitTimeout, wait_for

    console = _console()
    state = _state()
    pid = state["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        console.print(f"`chaoslab up` (pid {pid}) is gone; removing stale state")
        STATE.unlink()
        return
    try:  # `up` removes its state file once everything it started is stopped
        wait_for(lambda: not STATE.exists(), timeout=timeout, interval=0.1,
                 description=f"`chaoslab up` (pid {pid}) to stop")
    except WaitTimeout as exc:
        console.print(str(exc))
        raise typer.Exit(1) from None
    console.print("stopped")


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors are one line on stderr with exit code 2, never a traceback."""
    try:
        code = app(args=argv, standalone_mode=False, prog_name="chaoslab")
    except UsageProblem as exc:
        sys.stderr.write(f"chaoslab: error: {exc}\n")
        code = 2
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = 130
    except typer.TyperException as exc:  # click's usage errors (bad option, bad type, ...)
        if type(exc).__name__ == "NoArgsIsHelpError":
            code = 2
        else:
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "chaoslab"
            sys.stderr.write(f"{where}: error: {' '.join(message.split())}\n")
            code = getattr(exc, "exit_code", 2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
