"""The ``chaoslab`` command: ``run`` (the main job), ``scenarios``, ``up``, ``status``
(``--watch``: live), ``down``, ``dashboard`` (a live page), ``diff`` (two runs' journals),
``search`` (fault schedules drawn by Hypothesis, shrunk) and ``replay`` (a recorded run again).

Exit codes: 0 every check valid, 1 a check invalid, 2 undecided (unknown) or a usage error
(a bad option, name or value: one line on stderr, nothing started, nothing written).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
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
RUNTIMES = ("auto", "local", "docker", "external", "sim")


class UsageProblem(Exception):
    """A bad option, name or value: reported in one line, exit code 2, nothing started."""


def _console() -> Console:
    return Console(highlight=False)


RuntimeOpt = Annotated[str, typer.Option("--runtime", help="local, docker, auto (docker when "
                                         "an engine answers and the image can be had), "
                                         "external (a cluster started by someone else), or "
                                         "sim (in this process, on virtual time)")]
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
                    repair: str | None = None, handoff_rate: float | None = None,
                    limits=None):
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
                                    ("repair", repair), ("handoff_rate", handoff_rate))
                  if v is not None}
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


def _replay_command(report: str, *, runtime: str = "auto", gateway_url: str | None = None,
                    external_file: str | None = None) -> str:
    """The command that runs the recorded scenario again, on the same runtime and cluster."""
    argv = ["chaoslab", "run", "--scenario-file", str(Path(report) / "verdict.json")]
    if runtime != "auto":
        argv += ["--runtime", runtime]
    if gateway_url:
        argv += ["--gateway-url", gateway_url]
    if external_file:
        argv += ["--external-file", external_file]
    return shlex.join(argv)


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
    handoff_rate: Annotated[float | None, typer.Option(
        help="records/s a node hands off to a peer coming back (default 250; 0: all at once, "
             "weakened: a herd)")] = None,
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
    from chaos.scenario import run as run_scenario

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    control = _external_control(runtime, gateway_url, external_file)
    sc = _build_scenario(scenario, scenario_file, seed=seed, duration=duration, users=users,
                         processes=processes, client=client, pattern=pattern,
                         faults=list(fault or ()), nodes=nodes, n=n, w=w, r=r, storage=storage,
                         versions=versions, mesh=mesh, repair=repair,
                         handoff_rate=handoff_rate, limits=control)
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
    replay = _replay_command(report, runtime=runtime, gateway_url=gateway_url,
                             external_file=external_file)
    # the report's Bokeh takes 1.5-2.4 s to import: done while the run waits on its traffic
    threading.Thread(target=importlib.import_module, args=("chaos.report",), daemon=True,
                     name="chaoslab-import-report").start()
    try:
        result = run_scenario(sc, rt, directory=report, progress=say)
    except KeyboardInterrupt:
        console.print(f"interrupted; faults healed and the cluster stopped. seed={sc.seed}")
        raise typer.Exit(130) from None
    from chaos.report import write_report  # imported by now (the thread above)

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
    if runtime == "sim":
        raise UsageProblem("the sim runtime lives inside one run, reachable by nothing else: "
                           "`up` needs local or docker (or auto)")
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
    watch: Annotated[bool, typer.Option("--watch", help="a live view, refreshed until Ctrl-C "
                                        "(the terminal dashboard)")] = False,
) -> None:
    """Show each node's status, the cluster's health and the ring."""
    if watch:
        if json:
            raise UsageProblem("--watch and --json do not go together: --json prints one "
                               "snapshot for machines, --watch a live view for people")
        from chaos.dashboard.terminal import watch as watch_live

        watch_live(_watch_target(registry, None))
        return
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


def _watch_target(registry: str | None, run_dir: str | None):
    """The cluster the dashboard watches (chaos.dashboard.find_target); no cluster: exit 1."""
    from chaos.dashboard import NoCluster, TargetError, find_target

    try:
        return find_target(registry=registry, run=run_dir)
    except NoCluster as exc:
        sys.stderr.write(f"chaoslab: {exc}\n")
        raise typer.Exit(1) from None
    except TargetError as exc:
        raise UsageProblem(str(exc)) from None


@app.command()
def dashboard(
    registry: Annotated[str | None, typer.Option(
        help="registry URL (default: from `up`, or a running scenario's)")] = None,
    run_dir: Annotated[str | None, typer.Option(
        "--run", help="a running scenario's artifact folder (its --report): its faults and "
                      "the harness's breakers")] = None,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0: a free one)")] = 8765,
) -> None:
    """Serve a live page of the cluster (nodes, ring, traffic, breakers, faults) on
    127.0.0.1 only, until Ctrl-C."""
    from chaos.dashboard.web import HOST, bind, serve

    if not 0 <= port <= 65535:
        raise UsageProblem(f"--port must be from 0 to 65535, got {port}")
    target = _watch_target(registry, run_dir)
    try:
        sock = bind(port)
    except OSError as exc:
        raise UsageProblem(f"cannot listen on {HOST}:{port} ({exc.strerror or exc}): choose "
                           "another port with --port") from None
    logging.basicConfig(level=logging.WARNING)
    _console().print(f"dashboard of {target.source}: http://{HOST}:{sock.getsockname()[1]}/ "
                     "(Ctrl-C stops it)", soft_wrap=True)
    try:
        serve(target, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


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


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="run A: its artifacts directory or journal.json")],
    b: Annotated[str, typer.Argument(help="run B: its artifacts directory or journal.json")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Compare two runs' journals side by side: verdicts per checker, throughput, latency
    percentiles and failover times (docs/report.md)."""
    from chaos.report.diff import DiffError, as_table, compare, load_journal
    from chaos.report.diff import as_json as diff_json

    try:
        rows = compare(load_journal(a), load_journal(b))
    except DiffError as exc:
        raise UsageProblem(str(exc)) from None
    if as_json:
        sys.stdout.write(orjson.dumps(diff_json(rows, a, b), option=orjson.OPT_INDENT_2,
                                      default=str).decode() + "\n")
    else:
        _console().print(as_table(rows, a, b))


@app.command()
def search(
    scenario: Annotated[str | None, typer.Argument(help="the base scenario (its schedule is "
                                                   "replaced by the drawn ones)")] = None,
    runtime: Annotated[str, typer.Option(help="where the schedules run: sim (exact and "
                                              "fast), local or docker")] = "sim",
    profile: Annotated[str, typer.Option(help="the budget: quick (CI: 12 schedules, 36 runs, "
                                              "2 min) or deep (nightly: 300, 1200, 1 h)")] = "quick",
    budget: Annotated[int | None, typer.Option(help="schedules drawn before giving up "
                                                    "(default: the profile's)")] = None,
    time_limit: Annotated[float | None, typer.Option(help="seconds before giving up "
                                                          "(default: the profile's)")] = None,
    database: Annotated[str | None, typer.Option(
        help="directory keeping failing schedules between searches, tried first (default "
             ".chaoslab/search-examples), or none")] = None,
    seed: Annotated[int | None, typer.Option(help="the runs' seed (default: random, "
                                                  "printed)")] = None,
    search_seed: Annotated[int | None, typer.Option(help="seed of the draws (default: "
                                                         "--seed)")] = None,
    max_steps: Annotated[int, typer.Option(help="steps per schedule at most")] = 4,
    duration: Annotated[float | None, typer.Option(help="seconds of traffic per run")] = None,
    w: Annotated[int | None, typer.Option(help="write quorum W")] = None,
    r: Annotated[int | None, typer.Option(help="read quorum R")] = None,
    storage: Annotated[str | None, typer.Option(help="durable or memory (weakened)")] = None,
    versions: Annotated[str | None, typer.Option(help="hlc or wallclock (weakened)")] = None,
    repair: Annotated[str | None, typer.Option(help="on, or off (weakened)")] = None,
    confirm: Annotated[str, typer.Option(help="re-run the minimal schedule there to confirm "
                                              "it: local, docker or none")] = "local",
    report: Annotated[str, typer.Option(help="directory for search.json")] = "reports/search",
) -> None:
    """Draw fault schedules with Hypothesis, run each against the cluster under load, and
    shrink the first that breaks a check to the smallest that still does. Exit 1 when one
    was found, 0 when the budget found none."""
    from chaos.runtime import RUNTIME_KINDS
    from chaos.search import DATABASE, PROFILES, runner
    from chaos.search import search as run_search

    choices = [k for k in RUNTIME_KINDS if k not in ("auto", "external")]
    for flag, value, valid in (("--runtime", runtime, choices),
                               ("--confirm", confirm, ["local", "docker", "none"]),
                               ("--profile", profile, list(PROFILES))):
        if value not in valid:
            raise UsageProblem(f"unknown {flag} {value!r}: choose one of {', '.join(valid)}")
    for flag, value in (("--budget", budget), ("--max-steps", max_steps)):
        if value is not None and value < 1:
            raise UsageProblem(f"{flag} must be at least 1, got {value}")
    if time_limit is not None and not time_limit > 0:
        raise UsageProblem(f"--time-limit must be a positive number of seconds, got {time_limit}")
    base = _build_scenario(scenario, None, seed=seed, duration=duration, users=None,
                           processes=None, client=None, pattern=None, faults=[], nodes=None,
                           n=None, w=w, r=r, storage=storage, versions=versions, mesh=None,
                           repair=repair)
    console = _console()
    logging.basicConfig(level=logging.WARNING)
    limits = PROFILES[profile]
    console.print(f"[bold]chaoslab search[/] {base.name} runtime={runtime} seed={base.seed} "
                  f"profile={profile} budget={budget or limits.budget} "
                  f"time-limit={time_limit or limits.time_limit:g}s")

    def tried(trial) -> None:
        steps = "; ".join(s.fault.describe() for s in trial.schedule.steps)
        console.print(f"[dim]{trial.seconds:5.1f}s[/] {trial.valid}: {steps}")

    found = run_search(base, runner(runtime), profile=profile, budget=budget,
                       time_limit=time_limit, seed=search_seed, max_steps=max_steps,
                       runtime=runtime, on_trial=tried,
                       database=None if database == "none" else database or DATABASE)
    if found.found and confirm != "none" and confirm != runtime:
        console.print(f"confirming the minimal schedule on {confirm}...")
        found.confirm(runner(confirm), confirm)
    out = Path(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_bytes(orjson.dumps(found.as_json(), option=orjson.OPT_INDENT_2))
    console.print(found.describe())
    if found.found:
        console.print(f"replay: {shlex.join(['chaoslab', 'replay', str(out / 'search.json')])}")
    raise typer.Exit(1 if found.found else 0)


@app.command()
def replay(
    recorded: Annotated[str, typer.Argument(help="search.json or verdict.json of a run, or a "
                                                 "seed (with --scenario)")],
    scenario: Annotated[str | None, typer.Option(help="with a seed: the scenario to run")] = None,
    runtime: Annotated[str | None, typer.Option(help="default: the recorded run's (sim for a "
                                                     "search)")] = None,
) -> None:
    """Run a recorded scenario again with its seed and say whether the violation
    reproduces (on sim: exactly, event for event). Exit codes as for `run`."""
    from chaos.checkers.base import Validity
    from chaos.runtime import RUNTIME_KINDS
    from chaos.scenario import Scenario
    from chaos.search import history_digest, runner

    expected, digest, kind = None, None, runtime
    if recorded.isdigit():
        sc = _build_scenario(scenario, None, seed=int(recorded), duration=None, users=None,
                             processes=None, client=None, pattern=None, faults=[], nodes=None,
                             n=None, w=None, r=None, storage=None, versions=None, mesh=None)
    else:
        if scenario:
            raise UsageProblem("--scenario goes with a seed, not with a recorded file")
        try:
            data = orjson.loads(Path(recorded).read_bytes())
            raw = data["scenario"]
            if raw is None:
                raise UsageProblem(f"{recorded} records a search that found nothing to replay")
            sc = Scenario.from_json(raw).plan()
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UsageProblem(f"cannot read a recorded scenario from {recorded}: {exc}") from None
        if data.get("kind") == "chaoslab-search":
            expected, kind = data["verdict"]["verdict"], kind or data["runtime"]
            digest = data["verdict"].get("history_sha256")
        else:
            expected = data.get("verdict")
    kind = kind or "local"
    if kind not in RUNTIME_KINDS or kind in ("auto", "external"):
        valid = [k for k in RUNTIME_KINDS if k not in ("auto", "external")]
        raise UsageProblem(f"unknown --runtime {kind!r}: choose one of {', '.join(valid)}")
    console = _console()
    logging.basicConfig(level=logging.WARNING)
    console.print(f"[bold]chaoslab replay[/] {sc.name} runtime={kind} seed={sc.seed}")
    result = runner(kind)(sc)
    verdict = result.verdict.valid
    console.print(f"verdict: [bold]{str(verdict).upper()}[/]  {result.verdict.summary}")
    if expected is not None:
        same = "reproduced" if str(verdict) == expected else f"did NOT reproduce (was {expected})"
        if digest and kind == "sim":
            exact = history_digest(result.history) == digest
            same += "; the history is identical, event for event" if exact else \
                "; the history differs from the recorded one"
        console.print(f"replay {same}")
    raise typer.Exit(verdict.exit_code if isinstance(verdict, Validity) else 2)


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
