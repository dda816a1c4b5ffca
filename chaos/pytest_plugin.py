"""chaoslab's pytest plugin (registered as the ``pytest11`` entry point ``chaoslab``).

Options: ``--runtime local|docker|external|sim``, ``--chaos-seed N``, ``--chaos-artifacts DIR``;
for ``external`` (a cluster started by someone else): ``--gateway-url URL`` and
``--external-file FILE`` (how to kill, pause and restart its services: docs/external.md).
Markers: ``chaos`` (a chaos scenario), ``docker`` (needs a Docker engine),
``cluster(**spec)`` (the cluster the ``cluster`` fixture starts: any
:class:`~chaos.runtime.base.ClusterSpec` field, plus ``n``, ``w``, ``r``, ``versions``).

Fixtures:

- ``chaos_run(scenario)``: run a whole :class:`~chaos.scenario.Scenario` on the chosen
  runtime, write its artifacts, return the :class:`~chaos.scenario.RunResult`;
- ``cluster``: a started cluster (from the marker, or an indirect ``ClusterSpec`` parameter),
  always torn down; ``make_cluster(spec)`` starts more;
- ``nemesis``: the fault API bound to ``cluster`` (every fault is undone at teardown, also
  when the test fails);
- ``load``: Locust traffic against ``cluster`` (``load.start(Workload(...))``, ``load.wait()``),
  stopped at teardown; its operations join ``history`` when it ends;
- ``history``: the test's :class:`~chaos.history.History` (the nemesis's records and the
  traffic's, on one time axis);
- ``checks(*checkers)``: the checkers run over ``history`` (after final reads), with the
  artifacts written;
- ``chaos_seed`` (also ``seed``) and ``rng``: the one seed, printed with every failure and the
  command that replays it; ``chaos_artifacts``: this test's artifact folder.
"""

from __future__ import annotations

import dataclasses
import random
import re
import shlex
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from chaos.runtime.base import ClusterSpec
from chaos.seeds import derive

SESSION_LABEL = "org.chaoslab.test-session"
RUNTIME_CHOICES = ("local", "docker", "external", "sim")
_SETTINGS = ("n", "w", "r", "vnodes", "versions", "heartbeat_interval", "suspect_after",
             "dead_after", "repair")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaoslab", "chaos testing with chaoslab")
    group.addoption("--runtime", default="local", choices=RUNTIME_CHOICES,
                    help="where clusters run: local processes, docker containers, an "
                         "external cluster (--gateway-url, --external-file), or sim (in this "
                         "process, on virtual time)")
    group.addoption("--gateway-url", default=None,
                    help="--runtime external: the gateway of the cluster under test")
    group.addoption("--external-file", default=None,
                    help="--runtime external: the control file (TOML or JSON) saying how to "
                         "kill, pause and restart its services")
    group.addoption("--chaos-seed", type=int, default=None,
                    help="the one seed of every random choice (default: random, printed)")
    group.addoption("--chaos-artifacts", default=".chaoslab/artifacts",
                    help="each test writes its history, verdict and report in a folder "
                         "named after it here")
    group.addoption("--chaos-search-profile", choices=("quick", "deep"), default="quick",
                    help="the chaos_search fixture's budget: quick (CI: 12 schedules, 36 "
                         "runs, 2 min per search) or deep (nightly: 300, 1200, 1 h)")
    group.addoption("--chaos-search-db", default=".chaoslab/search-examples",
                    help="directory where chaos_search keeps failing schedules between runs "
                         "and tries them first; none: no database")
    group.addoption("--sim-recheck", type=float, default=0.25,
                    help="--runtime sim: the share of scenario runs run a second time and "
                         "compared event for event (a difference fails the test)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a chaos scenario against a real cluster")
    config.addinivalue_line("markers", "docker: needs a Docker engine and the locally built image")
    config.addinivalue_line("markers", "cluster(**spec): the cluster the `cluster` fixture "
                                       "starts (ClusterSpec fields, plus n, w, r, versions)")
    seed = config.getoption("--chaos-seed")
    config.chaos_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    config.chaos_session = uuid.uuid4().hex[:12]


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.chaos_seed
    return (f"chaoslab: seed {seed} (replay with --chaos-seed {seed}); runtime "
            f"{config.getoption('--runtime')}; artifacts {config.getoption('--chaos-artifacts')}")


def replay_command(item: pytest.Item) -> str:
    config = item.config
    parts = ["pytest", shlex.quote(item.nodeid), "--chaos-seed", str(config.chaos_seed)]
    if config.getoption("--runtime") != "local":
        parts += ["--runtime", config.getoption("--runtime")]
    for option in ("--gateway-url", "--external-file"):
        if config.getoption(option):
            parts += [option, shlex.quote(config.getoption(option))]
    return " ".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(("chaoslab", f"seed {item.config.chaos_seed}: replay with\n  "
                                f"{replay_command(item)}"))


# ---- the seed and the artifacts ----------------------------------------------------------
@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    return request.config.chaos_seed


@pytest.fixture
def seed(chaos_seed: int) -> int:
    return chaos_seed


@pytest.fixture
def rng(chaos_seed: int) -> random.Random:
    return random.Random(chaos_seed)


@pytest.fixture
def chaos_artifacts(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")[-150:]
    path = Path(request.config.getoption("--chaos-artifacts")) / name
    shutil.rmtree(path, ignore_errors=True)  # this run's files only, never an earlier run's
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- clusters --------------------------------------------------------------------------------
def spec_from(options: dict[str, Any], seed: int) -> ClusterSpec:
    """A ClusterSpec from marker keywords (settings fields go into ``settings``)."""
    from system.config import ClusterSettings

    settings = {k: options.pop(k) for k in _SETTINGS if k in options}
    base = ClusterSpec()
    if settings:
        current = {f.name: getattr(base.settings, f.name)
                   for f in dataclasses.fields(ClusterSettings)}
        options["settings"] = ClusterSettings(**(current | settings))
    return dataclasses.replace(base, seed=seed, **options)


def _new_runtime(config: pytest.Config, spec: ClusterSpec, workdir: Path, **kw):
    from chaos.runtime import open_runtime

    kind = config.getoption("--runtime")
    labels = {SESSION_LABEL: config.chaos_session}
    external = {"gateway_url": config.getoption("--gateway-url"),
                "external_file": config.getoption("--external-file")}
    return open_runtime(kind, spec, labels=labels,
                        workdir=str(workdir) if kind in ("local", "external") else None,
                        **{k: v for k, v in external.items() if v}, **kw)


@pytest.fixture
def make_cluster(request: pytest.FixtureRequest, tmp_path: Path, chaos_seed: int):
    """``make_cluster(spec=None, **options)`` starts a cluster on the chosen runtime; every
    one is stopped after the test, also when it fails."""
    started = []

    def make(spec: ClusterSpec | None = None, **options: Any):
        spec = spec or ClusterSpec()
        if spec.seed == 0:
            spec = dataclasses.replace(spec, seed=chaos_seed)
        rt = _new_runtime(request.config, spec, tmp_path / f"cluster{len(started)}", **options)
        started.append(rt)
        rt.start()
        return rt

    yield make
    for rt in reversed(started):
        rt.stop()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, make_cluster, chaos_seed: int):
    """A started cluster: ``@pytest.mark.cluster(w=1, r=1, storage="memory")`` or
    ``@pytest.mark.parametrize("cluster", [ClusterSpec(...)], indirect=True)``."""
    param = getattr(request, "param", None)
    if isinstance(param, ClusterSpec):
        return make_cluster(param)
    marker = request.node.get_closest_marker("cluster")
    return make_cluster(spec_from(dict(marker.kwargs) if marker else {}, chaos_seed))


@pytest.fixture(scope="module")
def shared_cluster(request: pytest.FixtureRequest, tmp_path_factory):
    """One healthy cluster for a module of tests that do not break it."""
    rt = _new_runtime(request.config, ClusterSpec(seed=request.config.chaos_seed),
                      tmp_path_factory.mktemp("shared"))
    try:
        rt.start()
        yield rt
    finally:
        rt.stop()


# ---- one test's run: history, nemesis, load, checks ---------------------------------------------
@pytest.fixture
def history():
    """The test's history: the nemesis records into it, a finished ``load`` joins it."""
    from chaos.history import History

    return History()


@pytest.fixture
def nemesis(cluster, history, chaos_seed: int):
    from chaos.nemesis import Nemesis
    from chaos.seeds import derive

    with Nemesis(cluster, history, rng=random.Random(derive(chaos_seed, "nemesis"))) as nem:
        yield nem


class LoadControl:
    """Locust traffic against one cluster, for the ``load`` fixture."""

    def __init__(self, cluster, history, seed: int, directory: Path) -> None:
        self.cluster, self.history, self.seed, self.directory = cluster, history, seed, directory
        self.workload = None
        self._load = None
        self._absorbed = False

    def start(self, workload=None):
        """Start Locust (headless, in its own processes) with ``workload``."""
        from chaos.load import Load
        from chaos.seeds import derive
        from chaos.traffic import Workload

        if self._load is not None:
            raise RuntimeError("load already started in this test")
        self.workload = workload or Workload()
        self._load = Load(self.workload, host=self.cluster.endpoints().registry,
                          seed=derive(self.seed, "workload"), directory=self.directory,
                          t0=self.history.t0)
        self._load.start()
        return self

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.history.t0

    def snapshot(self):
        return self._require().snapshot()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the traffic to end by itself; its operations join ``history``."""
        load = self._require()
        code = load.wait(timeout=timeout if timeout is not None else self.workload.duration + 60)
        self._absorb()
        return code

    def stop(self) -> None:
        if self._load is not None:
            self._load.stop()
            self._absorb()

    @property
    def cpu_share(self) -> float:
        """Locust's share of one core over its run."""
        return self._require().cpu_share

    def _require(self):
        if self._load is None:
            raise RuntimeError("start the load first: load.start(Workload(...))")
        return self._load

    def _absorb(self) -> None:
        if self._absorbed:
            return
        self._absorbed = True
        self.history.absorb(self._load.history().ops)

    def close(self) -> None:
        if self._load is not None:
            try:
                self.stop()
            finally:
                self._load.__exit__(None, None, None)


@pytest.fixture
def load(cluster, history, chaos_seed: int, chaos_artifacts: Path):
    control = LoadControl(cluster, history, chaos_seed, chaos_artifacts)
    try:
        yield control
    finally:
        control.close()


@pytest.fixture
def checks(request: pytest.FixtureRequest, cluster, history, load, chaos_seed: int,
           chaos_artifacts: Path):
    """``checks(*checkers, final=None)``: final reads of every written key (unless given),
    the checkers over ``history``, and the artifacts written; returns the Verdict."""
    def run_checks(*checkers, final=None):
        from chaos.checkers import Compose, make_checker
        from chaos.report import write_report
        from chaos.scenario import RunResult, Scenario, client_config, final_reads
        from chaos.traffic import Workload, make_kv

        resolved = tuple(make_checker(c) for c in (checkers or ("availability", "durability")))
        workload = load.workload or Workload()
        sc = Scenario(name=request.node.name, seed=chaos_seed, cluster=cluster.spec,
                      workload=workload, checkers=resolved)
        if final is None:
            keys = sorted({op.key for op in history.client_ops() if op.f == "write"})
            registry = cluster.endpoints().registry
            with make_kv(workload.client, registry, client_config(sc, registry)) as kv:
                final = final_reads(kv, keys)
        verdict = Compose(resolved).check(history, final)
        result = RunResult(sc, history, final, verdict, {}, str(chaos_artifacts))
        write_report(result, str(chaos_artifacts), replay=replay_command(request.node))
        return verdict

    return run_checks


@pytest.fixture
def chaos_run(request: pytest.FixtureRequest, chaos_seed: int, chaos_artifacts: Path,
              tmp_path: Path):
    """``chaos_run(scenario)``: run it on the chosen runtime (with this test's seed unless the
    scenario sets one), write the artifacts, return the RunResult."""
    def run(scenario):
        from chaos.report import write_report
        from chaos.scenario import run as run_scenario

        if scenario.seed == 0:
            scenario = scenario.but(seed=chaos_seed)
        spec = dataclasses.replace(scenario.cluster, seed=scenario.seed)
        rt = _new_runtime(request.config, spec, tmp_path / "scenario")
        started = time.monotonic()
        result = run_scenario(scenario, rt, directory=chaos_artifacts)
        if _rechecked(request, scenario.seed):
            _check_determinism(request, scenario, result, rt, tmp_path / "again")
        write_report(result, str(chaos_artifacts), replay=replay_command(request.node))
        request.config.stash.setdefault(_RUNS, []).append(
            (request.node.nodeid, time.monotonic() - started, result))
        return result

    return run


@pytest.fixture
def chaos_search(request: pytest.FixtureRequest, chaos_seed: int, chaos_artifacts: Path):
    """``chaos_search(scenario, runtime="sim", confirm=None, **options)``: draw fault
    schedules for the scenario (with this test's seed unless it sets one) within the budget
    of ``--chaos-search-profile`` (``profile=``, ``budget=``, ``max_runs=``, ``time_limit=``
    override it), trying first the failing schedules ``--chaos-search-db`` kept; shrink the
    first that fails, confirm it on ``confirm`` (a runtime) if given, write search.json, and
    return the :class:`chaos.search.Search`. ``assert not found.found, found.describe()``
    makes a test that fails with the minimal schedule, its seed and the replay command."""
    def run(scenario, *, runtime: str = "sim", confirm: str | None = None, **options):
        import orjson

        from chaos.search import runner, search

        if scenario.seed == 0:
            scenario = scenario.but(seed=chaos_seed)
        db = request.config.getoption("--chaos-search-db")
        options.setdefault("profile", request.config.getoption("--chaos-search-profile"))
        options.setdefault("database", None if db == "none" else db)
        found = search(scenario, runner(runtime), runtime=runtime, **options)
        if found.found and confirm:
            found.confirm(runner(confirm), confirm)
        chaos_artifacts.mkdir(parents=True, exist_ok=True)
        path = chaos_artifacts / "search.json"
        path.write_bytes(orjson.dumps(found.as_json(), option=orjson.OPT_INDENT_2))
        if found.found:
            request.node.add_report_section("call", "chaoslab search",
                                            f"{found.describe()}\nreplay: chaoslab replay {path}")
        return found

    return run


def _rechecked(request: pytest.FixtureRequest, seed: int) -> bool:
    """On sim, this run is among the share run twice: drawn from the test's id and seed, so
    the same tests are rechecked when a run is replayed."""
    if request.config.getoption("--runtime") != "sim":
        return False
    share = request.config.getoption("--sim-recheck")
    return derive(seed, f"recheck:{request.node.nodeid}") % 1000 < share * 1000


def _check_determinism(request, scenario, result, runtime, workdir: Path) -> None:
    """Run the scenario again on a fresh simulation and compare the histories and the
    injected events, record for record: the first difference fails the test."""
    from chaos.scenario import run as run_scenario
    from chaos.sim.determinism import event_lines, first_divergence, history_lines

    spec = dataclasses.replace(scenario.cluster, seed=scenario.seed)
    again_rt = _new_runtime(request.config, spec, workdir)
    again = run_scenario(scenario, again_rt, directory=workdir / "artifacts")
    for what, a, b in (("history record", history_lines(result.history),
                        history_lines(again.history)),
                       ("injected event", event_lines(runtime.events),
                        event_lines(again_rt.events))):
        diverged = first_divergence(a, b, what=what)
        if diverged:
            pytest.fail(f"the simulation is not deterministic for seed {scenario.seed}: "
                        f"{diverged}", pytrace=False)
    request.node.add_report_section("call", "chaoslab sim", "run twice: identical, event for "
                                    f"event ({len(a)} events, {len(history_lines(result.history))} "
                                    "history records)")


_RUNS = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """Per scenario: wall time, verdict, operations per second and Locust's CPU share (Locust
    must not be the bottleneck)."""
    runs = config.stash.get(_RUNS, [])
    if not runs:
        return
    terminalreporter.section("chaoslab scenarios")
    sim = config.getoption("--runtime") == "sim"  # traffic in process: no Locust to weigh
    for nodeid, seconds, result in runs:
        load = result.load
        cpu = "in process" if sim else f"Locust CPU {load.get('cpu_share', 0):5.0%}"
        terminalreporter.write_line(
            f"{seconds:6.1f}s {str(result.verdict.valid):8} {load.get('ops_per_s', 0):7.0f} ops/s "
            f"{cpu}  {nodeid}")
    total = sum(seconds for _, seconds, _ in runs)
    terminalreporter.write_line(f"{total:6.1f}s in {len(runs)} scenario runs")


# ---- nothing left behind ---------------------------------------------------------------------
ANONYMOUS_VOLUME = re.compile(r"[0-9a-f]{64}")


def _uses_docker(session: pytest.Session) -> bool:
    return session.config.getoption("--runtime") == "docker" or any(
        item.get_closest_marker("docker") for item in session.items)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(request: pytest.FixtureRequest):
    """With Docker in use: after the whole session, no container, network or volume this
    session created may remain (they are removed, and the session errors so the leak is
    seen). Anonymous volumes (the image's ``VOLUME /data``) carry no label: those that
    appeared during the session and no container uses are this session's leaks."""
    if not _uses_docker(request.session):
        yield
        return
    client = _docker_client()
    volumes_before = {v.name for v in client.volumes.list()} if client else set()
    yield
    client = client or _docker_client()
    if client is None:
        return
    flt = {"label": f"{SESSION_LABEL}={request.config.chaos_session}"}
    orphans = [v for v in client.volumes.list(filters={"dangling": True})
               if v.name not in volumes_before and ANONYMOUS_VOLUME.fullmatch(v.name)]
    leftovers = [*client.containers.list(all=True, filters=flt),
                 *client.networks.list(filters=flt), *client.volumes.list(filters=flt), *orphans]
    for thing in leftovers:
        try:
            thing.remove(force=True) if not hasattr(thing, "connect") else thing.remove()
        except Exception:  # keep removing the rest
            pass
    assert not leftovers, f"left behind: {[getattr(t, 'name', t) for t in leftovers]}"


def _docker_client():
    """A client of the local Docker engine, or None when none answers."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception:
        return None
    return client
