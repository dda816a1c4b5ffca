"""Where a cluster runs: local processes or Docker containers, behind one protocol.

    from chaos.runtime import open_runtime
    rt = open_runtime("auto", ClusterSpec(seed=7))
    endpoints = rt.start()
    ...
    rt.stop()

``open_runtime`` checks the combination before anything starts and raises
:class:`RuntimeUnavailable` (one line: why, and what to do) when it cannot work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from chaos.runtime.base import (
    Cluster,
    ClusterSpec,
    Endpoints,
    Killable,
    Meshed,
    Pausable,
    Runtime,
    Scalable,
)

__all__ = ["open_runtime", "image_available", "RuntimeUnavailable", "RUNTIME_KINDS",
           "ClusterSpec", "Endpoints", "Cluster", "Killable", "Pausable", "Meshed", "Scalable",
           "Runtime"]

log = logging.getLogger("chaoslab.runtime")

RUNTIME_KINDS = ("auto", "local", "docker", "external", "sim")


class RuntimeUnavailable(RuntimeError):
    """The runtime asked for cannot run here; the message says why and what to do."""


def image_available() -> str | None:
    """None when the Docker runtime can run here (an engine answers and the chaoslab image is
    built or can be built), else the reason in one line."""
    try:
        import docker
    except ImportError:
        return "the docker SDK is missing: pip install -e '.[harness]'"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:  # DockerException, or a requests error (an OSError)
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return f"no Docker engine answers ({first}); start dockerd or set DOCKER_HOST"
    try:
        from chaos.runtime.images import unavailable_reason

        return unavailable_reason(client=client)
    finally:
        client.close()


def open_runtime(kind: Literal["auto", "local", "docker", "external", "sim"], spec: ClusterSpec, *,
                 toxiproxy_url: str | None = None, labels: dict[str, str] | None = None,
                 workdir: str | None = None, registry_port: int | None = None,
                 progress: Callable[[str], None] | None = None,
                 gateway_url: str | None = None, external_file: str | None = None) -> Runtime:
    """A runtime for ``spec``, not started.

    ``kind``: ``"local"`` (processes on this host), ``"docker"`` (containers), or ``"auto"``:
    Docker when an engine answers and the image can be had, else local (logged, with why).
    ``toxiproxy_url`` (local only): put the links on that server instead of starting one.
    ``workdir`` (local only; Docker ignores it): logs and data. ``registry_port`` (local
    only). ``labels`` (Docker only; local ignores them): added to every container, network
    and volume. ``progress`` hears one line per start step (and image build step).
    ``"external"``: a cluster someone else started, at ``gateway_url``, broken as the control
    file ``external_file`` says (:mod:`chaos.runtime.external`); ``workdir`` holds its logs.
    ``"sim"``: the whole cluster in this process on virtual time (:mod:`chaos.runtime.sim`);
    ``workdir`` holds the nodes' data."""
    if kind not in RUNTIME_KINDS:
        raise RuntimeUnavailable(f"unknown runtime {kind!r}: choose one of "
                                 f"{', '.join(RUNTIME_KINDS)}")
    external_only = [flag for flag, given in (("gateway_url", gateway_url),
                                              ("external_file", external_file)) if given]
    if kind == "external":
        return _external(spec, gateway_url, external_file, workdir, toxiproxy_url,
                         registry_port, progress)
    if kind == "sim":
        given = [flag for flag, value in (("toxiproxy_url", toxiproxy_url),
                                          ("registry_port", registry_port),
                                          *(("gateway_url", gateway_url),
                                            ("external_file", external_file))) if value]
        if given:
            raise RuntimeUnavailable(f"{' and '.join(given)} do not apply to the sim runtime "
                                     "(no process, no port, no proxy server): drop them")
        from chaos.runtime.sim import SimRuntime

        return SimRuntime(spec, workdir=workdir)
    if external_only:
        raise RuntimeUnavailable(f"{' and '.join(external_only)} only work with the external "
                                 "runtime: add --runtime external, or drop them")
    local_only = [flag for flag, given in (("toxiproxy_url", toxiproxy_url),
                                           ("registry_port", registry_port)) if given]
    if kind == "docker" and local_only:
        raise RuntimeUnavailable(f"{' and '.join(local_only)} only work with the local "
                                 "runtime (the docker runtime runs its own proxy and "
                                 "publishes random ports): drop them, or use --runtime local")
    if kind == "auto":
        why = (f"{' and '.join(local_only)} given" if local_only else image_available())
        if why is None:
            return _docker(spec, labels, progress)
        message = f"runtime auto: local processes, not docker ({why})"
        (progress or log.info)(message)
    elif kind == "docker":
        why = image_available()
        if why is not None:
            raise RuntimeUnavailable(f"the docker runtime cannot run here: {why}; or use "
                                     "--runtime local")
        return _docker(spec, labels, progress)
    from chaos.runtime.local import LocalRuntime

    return LocalRuntime(spec, workdir=workdir, registry_port=registry_port,
                        toxiproxy_url=toxiproxy_url, progress=progress)


def _docker(spec: ClusterSpec, labels: dict[str, str] | None,
            progress: Callable[[str], None] | None) -> Runtime:
    from chaos.runtime.docker import DockerRuntime

    return DockerRuntime(spec, labels=labels, progress=progress)


def _external(spec: ClusterSpec, gateway_url: str | None, external_file: str | None,
              workdir: str | None, toxiproxy_url: str | None, registry_port: int | None,
              progress: Callable[[str], None] | None) -> Cluster:
    from chaos.runtime.external import ControlFileError, ExternalControl, ExternalRuntime

    local_only = [flag for flag, given in (("toxiproxy_url", toxiproxy_url),
                                           ("registry_port", registry_port)) if given]
    if local_only:
        raise RuntimeUnavailable(f"{' and '.join(local_only)} only work with the local "
                                 "runtime (the external runtime runs its own proxy in front "
                                 "of the gateway): drop them")
    try:
        control = ExternalControl.load(gateway_url, external_file)
    except ControlFileError as exc:
        raise RuntimeUnavailable(str(exc)) from None
    return ExternalRuntime(spec, control, workdir=workdir, progress=progress)
