"""Shared test options and fixtures: ``--runtime local|docker``, ``--seed``, and a
``cluster`` factory that always tears down what it started, also when a test fails."""

from __future__ import annotations

import os
import random
import re
import uuid

import pytest

from chaos.runtime.base import ClusterSpec

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def pytest_addoption(parser):
    parser.addoption("--runtime", default="local", choices=["local", "docker"],
                     help="where clusters run in integration tests")
    parser.addoption("--seed", type=int, default=None, help="seed for every random choice")


def pytest_configure(config):
    seed = config.getoption("--seed")
    config.chaos_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)


def pytest_report_header(config):
    return f"chaoslab seed: {config.chaos_seed} (replay with --seed {config.chaos_seed}); " \
           f"runtime: {config.getoption('--runtime')}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(("chaoslab", f"seed {item.config.chaos_seed}: rerun with "
                                f"--seed {item.config.chaos_seed}"))


@pytest.fixture
def seed(request) -> int:
    return request.config.chaos_seed


@pytest.fixture
def rng(seed) -> random.Random:
    return random.Random(seed)


SESSION_LABEL = "org.chaoslab.test-session"
SESSION = uuid.uuid4().hex[:12]  # labels this session's containers, networks and volumes


def new_runtime(kind: str, spec: ClusterSpec, workdir: str, **kw):
    if kind == "docker":
        from chaos.runtime.docker import DockerRuntime

        return DockerRuntime(spec, labels={SESSION_LABEL: SESSION}, **kw)
    from chaos.runtime.local import LocalRuntime

    return LocalRuntime(spec, workdir=workdir, **kw)


@pytest.fixture
def make_cluster(request, tmp_path):
    """``make_cluster(spec)`` starts a cluster on the chosen runtime; all are stopped after."""
    started = []
    kind = request.config.getoption("--runtime")

    def make(spec: ClusterSpec | None = None, **kw):
        rt = new_runtime(kind, spec or ClusterSpec(), str(tmp_path / f"cluster{len(started)}"), **kw)
        started.append(rt)
        rt.start()
        return rt

    yield make
    for rt in reversed(started):
        rt.stop()


@pytest.fixture(scope="module")
def shared_cluster(request, tmp_path_factory):
    """One healthy cluster for a module of tests that do not break it."""
    rt = new_runtime(request.config.getoption("--runtime"),
                     ClusterSpec(log_level="info"), str(tmp_path_factory.mktemp("shared")))
    try:
        rt.start()
        yield rt
    finally:
        rt.stop()


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole session, no container, network or volume this session created may
    remain (they are removed here, and the session errors so the leak is seen). Anonymous
    volumes (the image's ``VOLUME /data``) carry no label: those that appeared during the
    session and no container uses are this session's leaks."""
    client = _docker_client()
    volumes_before = {v.name for v in client.volumes.list()} if client else set()
    yield
    client = client or _docker_client()
    if client is None:
        return
    flt = {"label": f"{SESSION_LABEL}={SESSION}"}  # only this session's: others may be running
    orphans = [v for v in client.volumes.list(filters={"dangling": True})
               if v.name not in volumes_before and ANONYMOUS_VOLUME.fullmatch(v.name)]
    leftovers = [*client.containers.list(all=True, filters=flt),
                 *client.networks.list(filters=flt), *client.volumes.list(filters=flt), *orphans]
    for thing in leftovers:
        try:
            thing.remove(force=True) if not hasattr(thing, "connect") else thing.remove()
        except Exception:
            pass
    assert not leftovers, f"left behind: {[getattr(t, 'name', t) for t in leftovers]}"


ANONYMOUS_VOLUME = re.compile(r"[0-9a-f]{64}")


def _docker_client():
    """A client of the local Docker engine, or None when none answers."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception:
        return None
    return client
