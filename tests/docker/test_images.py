"""The chaoslab image (chaos/runtime/images.py, compose/Dockerfile): built offline, tagged by content,
reused without a build, dependencies importable, non-root, healthcheck one-liner works."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chaos.runtime import images
from chaos.wait import wait_for

docker = pytest.importorskip("docker", reason="the docker SDK (chaoslab[harness]) is missing")

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]  # a cold build takes minutes

ROOT = Path(__file__).resolve().parents[2]
TEST_LABEL = {"org.chaoslab.test": "test_images"}
TEST_LABEL_FILTER = "org.chaoslab.test=test_images"
IMPORTS = "import starlette, uvicorn, aiohttp, orjson, uvloop, httptools, system.ring, system.quorum"
HEALTH = ("import urllib.request; "
          "urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=2)")


@pytest.fixture(scope="module")
def client():
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:  # requests errors are OSErrors
        pytest.skip(f"no Docker engine answers ({exc}); start dockerd or set DOCKER_HOST")
    yield client
    for leftover in client.containers.list(all=True, filters={"label": TEST_LABEL_FILTER}):
        remove(leftover)
    client.close()


def remove(container) -> None:
    """Remove a container; one already gone (or being removed) is fine."""
    try:
        container.remove(force=True, v=True)  # v: the image's anonymous /data volume too
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: "removal ... is already in progress"
            raise


@pytest.fixture(scope="module")
def build(client) -> images.ImageBuild:
    return images.prepare_image()


@contextmanager
def running(client, tag: str, command: list[str], **kwargs) -> Iterator:
    """A started container of ``tag``, removed afterwards whatever happens."""
    container = client.containers.create(tag, command, labels=TEST_LABEL, **kwargs)
    try:
        container.start()
        yield container
    finally:
        remove(container)


def run_once(client, tag: str, command: list[str], timeout: float = 60) -> str:
    with running(client, tag, command, network_disabled=True) as container:
        status = container.wait(timeout=timeout)
        output = container.logs().decode(errors="replace")
    assert status["StatusCode"] == 0, output
    return output


def test_tag_is_the_content_hash(client, build):
    assert build.tag == f"{images.REPOSITORY}:{build.content_hash[:12]}"
    image = client.images.get(build.tag)
    assert image.labels[images.HASH_LABEL] == build.content_hash
    assert client.images.get(f"{images.REPOSITORY}:latest").id == image.id


def test_second_call_builds_nothing(build):
    again = images.prepare_image()
    assert again.tag == build.tag
    assert not (again.image_built or again.base_built or again.wheelhouse_built)
    assert images.ensure_image() == build.tag


def test_dependencies_import_as_non_root_without_network(client, build):
    script = (f"{IMPORTS}; import os, sys; "
              "open('/data/probe', 'w').write('x'); "
              "print(os.getuid(), sys.version_info[:2], os.environ['PYTHONUNBUFFERED'])")
    uid, _, rest = run_once(client, build.tag, ["python", "-c", script]).strip().partition(" ")
    assert int(uid) != 0
    assert rest == "(3, 11) 1"
    config = client.images.get(build.tag).attrs["Config"]
    assert config["User"] not in ("", "root", "0")
    assert config["StopSignal"] == "SIGTERM"
    assert "/data" in config["Volumes"]


def test_build_needs_no_network():
    assert images.BUILD_NETWORK == "none"
    dockerfile = (ROOT / "compose" / "Dockerfile").read_text()
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    code = "\n".join(lines).replace("\\\n", " ")  # one line per instruction
    installs = [line for line in code.splitlines() if "pip install" in line]
    assert installs, "the Dockerfile should install the wheelhouse with pip"
    assert all("--no-index" in install for install in installs), installs
    for fetcher in ("apt-get", "curl", "wget", "pip download", "http://", "https://"):
        assert fetcher not in code


def test_content_hash_follows_the_sources(tmp_path):
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "a-1-py3-none-any.whl").write_bytes(b"wheel")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x\n")
    source = tmp_path / "mod.py"
    source.write_text("A = 1\n")
    sources = [("system/mod.py", source)]

    def digest(base_id: str = "sha256:1") -> str:
        return images._content_hash(dockerfile, base_id, tmp_path / "wheels", sources)

    first = digest()
    assert digest() == first
    assert digest("sha256:2") != first
    source.write_text("A = 2\n")
    assert digest() != first


def test_registry_answers_the_compose_healthcheck(client, build):
    command = ["python", "-m", "system.registry", "--host", "0.0.0.0", "--port", "5000",
               "--launcher", "none"]
    with running(client, build.tag, command) as container:
        def exited() -> str | None:
            container.reload()
            if container.status != "running":
                return container.logs().decode(errors="replace")
            return None

        wait_for(lambda: container.exec_run(["python", "-c", HEALTH]).exit_code == 0,
                 timeout=30, interval=0.2, abort=exited,
                 description="the registry to answer the compose healthcheck")
        container.stop(timeout=10)
        assert container.wait(timeout=15)["StatusCode"] == 0
