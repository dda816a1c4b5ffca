"""The chaoslab container image: one image for registry, nodes and proxy, built offline.

    python -m chaos.runtime.images [--base auto|debootstrap|IMAGE] [--force] [--mirror URL] [-v]

prints the image tag (``chaoslab:<hash12>``, also
tagged ``chaoslab:latest``) on stdout, each step as it starts and its time on stderr. Three
cached steps, each skipped when its output exists; a ``progress`` callback (the runtimes pass
theirs through) hears each step as it starts, since a first build takes a minute or two:

1. **Base image.** ``python:3.11-slim`` when it is present or can be pulled; otherwise (no
   registry reachable) a Debian bookworm minbase with python3 and python3-venv made by
   ``debootstrap`` from the mirror in this machine's apt sources, imported with
   ``docker import`` as ``chaoslab-base:<recipe hash>``. Needs root and debootstrap.
2. **Wheelhouse.** The ``[project] dependencies`` of pyproject.toml downloaded on the host as
   cp311 manylinux x86_64 wheels into ``.wheelhouse/<hash>/``; the image build installs them
   with ``pip install --no-index``, so the build runs with network mode ``none``.
3. **Image.** ``compose/Dockerfile`` built from a staged context (Dockerfile, wheels, the
   ``system/`` and ``chaos/`` sources). The tag is a hash of everything that goes in; when
   that tag exists no build runs at all.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AUTO",
    "DEBOOTSTRAP",
    "DEFAULT_BASE",
    "ImageBuild",
    "ImageError",
    "Progress",
    "ensure_image",
    "prepare_image",
    "unavailable_reason",
]

log = logging.getLogger("chaoslab.runtime.images")  # also when run as __main__

Progress = Callable[[str], None]  # hears one line per build step as it starts

DEFAULT_BASE = "python:3.11-slim"
AUTO = "auto"  # DEFAULT_BASE if present or pullable, else the debootstrap base
DEBOOTSTRAP = "debootstrap"  # always the local Debian base
REPOSITORY = "chaoslab"
BASE_REPOSITORY = "chaoslab-base"
HASH_LABEL = "org.chaoslab.content-hash"
BUILD_NETWORK = "none"  # docker build runs offline: every package comes from the wheelhouse

# What the local base is made of; its tag is a hash of this (the mirror is left out: any
# mirror of the suite gives the same packages).
DEBIAN_SUITE = "bookworm"
BASE_RECIPE = {
    "tool": "debootstrap",
    "variant": "minbase",
    "suite": DEBIAN_SUITE,
    "include": ["python3", "python3-venv", "ca-certificates"],
    "cleanup": ["var/cache/apt/archives/*.deb", "var/lib/apt/lists/*"],
    "changes": ["ENV LANG=C.UTF-8", 'CMD ["python3"]'],
}
# The interpreter and platform the wheels are for: the python3 of both bases (3.11, glibc 2.36).
WHEEL_TARGET = {
    "python_version": "3.11",
    "implementation": "cp",
    "platforms": ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"],
}
SOURCE_PACKAGES = ("system", "chaos")
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


class ImageError(RuntimeError):
    """A step of the image build failed; the message says how to fix it."""


@dataclass(frozen=True)
class ImageBuild:
    """What :func:`prepare_image` did. ``timings`` are seconds per step (base, wheelhouse,
    hash, image, total); the ``*_built`` flags say which steps did work instead of reusing."""

    tag: str
    content_hash: str
    base: str
    base_id: str
    image_built: bool
    base_built: bool
    wheelhouse_built: bool
    wheelhouse: Path
    timings: dict[str, float] = field(default_factory=dict)


def ensure_image(*, rebuild: bool = False, base: str | None = None,
                 project_root: Path | None = None, mirror: str | None = None,
                 progress: Progress | None = None) -> str:
    """Make sure the chaoslab image exists and return its tag (``chaoslab:<hash12>``).

    ``base``: ``"auto"`` (default), ``"debootstrap"`` or an image reference.
    ``rebuild=True`` runs ``docker build`` without layer cache even if the tag exists.
    ``progress`` is called with one line per step that does work (base image, wheelhouse,
    docker build), before it starts.
    """
    return prepare_image(rebuild=rebuild, base=base, project_root=project_root,
                         mirror=mirror, progress=progress).tag


def unavailable_reason(*, base: str | None = None, client=None) -> str | None:
    """Why the image cannot be had on this machine, or None when it can: it is already built,
    its base image is present or pullable, or the local base can be made (debootstrap, as
    root). Cheap unless it has to try a pull."""
    import docker

    own = client or docker.from_env(timeout=10)
    try:
        if _image_exists(own, f"{REPOSITORY}:latest"):
            return None
        base = base or AUTO
        local_base = f"{BASE_REPOSITORY}:{_digest(BASE_RECIPE)[:12]}"
        wanted = (DEFAULT_BASE, local_base) if base == AUTO else (
            (local_base,) if base == DEBOOTSTRAP else (base,))
        if any(_image_exists(own, ref) for ref in wanted):
            return None
        if base in (AUTO, DEBOOTSTRAP) and _can_debootstrap() is None:
            return None
        if base != DEBOOTSTRAP and _try_pull(wanted[0]):
            return None
        why = _can_debootstrap() if base in (AUTO, DEBOOTSTRAP) else "it is not present"
        return (f"the chaoslab image is not built and its base {wanted[0]} cannot be pulled; "
                f"{why}")
    finally:
        if client is None:
            own.close()


def _can_debootstrap() -> str | None:
    """None when a local Debian base can be made here, else why not and what to do."""
    if os.geteuid() != 0:
        return ("building a local base needs root (debootstrap): run "
                "`python -m chaos.runtime.images` as root once")
    if _debootstrap() is None:
        return "install debootstrap (`apt-get install -y debootstrap`) to build a local base"
    if shutil.which("docker") is None:
        return "the docker CLI is needed for `docker import`: install docker.io"
    return None


def _debootstrap() -> str | None:
    return shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.access(p, os.X_OK)),
        None)


def _reporter(progress: Progress | None) -> Progress:
    def say(message: str) -> None:
        log.info("%s", message)
        if progress is not None:
            progress(message)
    return say


def prepare_image(*, rebuild: bool = False, base: str | None = None,
                  project_root: Path | None = None, mirror: str | None = None,
                  repository: str = REPOSITORY, progress: Progress | None = None) -> ImageBuild:
    """Like :func:`ensure_image` but return an :class:`ImageBuild` describing each step."""
    try:
        import docker  # the harness extra; imported here so `import chaos` stays light
    except ImportError as exc:
        raise ImageError("the docker SDK is missing: pip install -e '.[harness]'") from exc

    root = _project_root(project_root)
    work = root / ".imagebuild"
    work.mkdir(exist_ok=True)
    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:  # requests errors are OSErrors
        raise ImageError(f"no Docker engine answers ({exc}); start dockerd or set DOCKER_HOST") \
            from exc
    timings: dict[str, float] = {}
    started = time.perf_counter()
    say = _reporter(progress)
    try:
        with _locked(work / "lock", say):
            t = time.perf_counter()
            base_ref, base_built = _ensure_base(client, base or AUTO, work, mirror, say)
            base_id = client.images.get(base_ref).id
            timings["base"] = time.perf_counter() - t
            log.info("base %s (%s) %s in %.2fs", base_ref, base_id[7:19],
                     "built" if base_built else "reused", timings["base"])

            t = time.perf_counter()
            wheelhouse, wheels_built = _ensure_wheelhouse(root, say)
            timings["wheelhouse"] = time.perf_counter() - t
            log.info("wheelhouse %s %s in %.2fs", wheelhouse.relative_to(root),
                     "downloaded" if wheels_built else "reused", timings["wheelhouse"])

            t = time.perf_counter()
            dockerfile = root / "compose" / "Dockerfile"
            sources = _source_files(root)
            digest = _content_hash(dockerfile, base_id, wheelhouse, sources)
            tag = f"{repository}:{digest[:12]}"
            timings["hash"] = time.perf_counter() - t

            t = time.perf_counter()
            image_built = rebuild or not _image_exists(client, tag)
            if image_built:
                say(f"image 3/3: docker build {tag} on {base_ref} (about a minute the "
                    "first time)")
                _build(client, root, work, dockerfile, wheelhouse, sources, base_ref,
                       tag, digest, nocache=rebuild)
            client.api.tag(tag, repository, "latest", force=True)
            if image_built:
                _prune_stale_tags(client, repository, keep=tag)
            timings["image"] = time.perf_counter() - t
            log.info("image %s %s in %.2fs", tag, "built" if image_built else "reused",
                     timings["image"])
    finally:
        client.close()
    timings["total"] = time.perf_counter() - started
    return ImageBuild(tag=tag, content_hash=digest, base=base_ref, base_id=base_id,
                      image_built=image_built, base_built=base_built,
                      wheelhouse_built=wheels_built, wheelhouse=wheelhouse, timings=timings)


# --- base image ------------------------------------------------------------------------------

def _ensure_base(client, base: str, work: Path, mirror: str | None,
                 say: Progress) -> tuple[str, bool]:
    local_base = f"{BASE_REPOSITORY}:{_digest(BASE_RECIPE)[:12]}"
    if base == AUTO:
        for ref in (DEFAULT_BASE, local_base):
            if _image_exists(client, ref):
                return ref, False
        say(f"image 1/3: pulling base {DEFAULT_BASE}")
        if _try_pull(DEFAULT_BASE):
            return DEFAULT_BASE, False
        say(f"image 1/3: {DEFAULT_BASE} cannot be pulled: building a local Debian base with "
            "debootstrap (about a minute)")
        return _build_debian_base(work, local_base, mirror), True
    if base == DEBOOTSTRAP:
        if _image_exists(client, local_base):
            return local_base, False
        say("image 1/3: building a local Debian base with debootstrap (about a minute)")
        return _build_debian_base(work, local_base, mirror), True
    if not _image_exists(client, base):
        say(f"image 1/3: pulling base {base}")
    if _image_exists(client, base) or _try_pull(base):
        return base, False
    raise ImageError(f"base image {base!r} is neither present nor pullable; load it with "
                     f"`docker load`, or use --base auto to build a local Debian base")


def _try_pull(ref: str, timeout: float = 20) -> bool:
    import docker

    repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    client = docker.from_env(timeout=timeout)
    t = time.perf_counter()
    try:
        client.images.pull(repo, tag=tag)
        log.info("pulled %s in %.1fs", ref, time.perf_counter() - t)
        return True
    except (docker.errors.DockerException, OSError) as exc:  # "not pullable here"
        log.info("pull %s failed after %.1fs: %s", ref, time.perf_counter() - t,
                 str(exc).splitlines()[0][:200])
        return False
    finally:
        client.close()


def _build_debian_base(work: Path, tag: str, mirror: str | None) -> str:
    if os.geteuid() != 0:
        raise ImageError("building the local base image runs debootstrap, which needs root: "
                         "run `python -m chaos.runtime.images` as root once, or provide "
                         f"{DEFAULT_BASE} (docker pull / docker load)")
    debootstrap = _debootstrap()
    if debootstrap is None:
        raise ImageError(f"{DEFAULT_BASE} cannot be pulled and debootstrap is missing: "
                         "install it with `apt-get install -y debootstrap` (Debian/Ubuntu)")
    if shutil.which("docker") is None:
        raise ImageError("the docker CLI is needed for `docker import`; install docker.io")
    mirror = mirror or apt_mirror(DEBIAN_SUITE)
    rootfs = work / f"rootfs-{tag.rpartition(':')[2]}"
    logfile = work / "debootstrap.log"
    shutil.rmtree(rootfs, ignore_errors=True)
    try:
        t = time.perf_counter()
        log.info("debootstrap %s from %s (a minute or two)", DEBIAN_SUITE, mirror)
        cmd = [debootstrap, f"--variant={BASE_RECIPE['variant']}",
               "--include=" + ",".join(BASE_RECIPE["include"]), DEBIAN_SUITE, str(rootfs),
               mirror]
        with logfile.open("w") as out:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        _unmount_under(rootfs)  # debootstrap can leave the target's /proc mounted
        if done.returncode != 0:
            tail = "".join(logfile.read_text(errors="replace").splitlines(True)[-15:])
            raise ImageError(f"debootstrap failed (exit {done.returncode}); full log in "
                             f"{logfile}; last lines:\n{tail}")
        log.info("debootstrap done in %.1fs", time.perf_counter() - t)
        for pattern in BASE_RECIPE["cleanup"]:
            for path in rootfs.glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        t = time.perf_counter()
        changes = [arg for change in BASE_RECIPE["changes"] for arg in ("--change", change)]
        tar = subprocess.Popen(["tar", "--numeric-owner", "--one-file-system", "-C",
                                str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                ["docker", "import", *changes, "--message", f"chaoslab base {BASE_RECIPE}",
                 "-", tag], stdin=tar.stdout, capture_output=True, text=True, check=False)
        finally:
            tar.stdout.close()
            tar_rc = tar.wait()
        if tar_rc != 0 or imported.returncode != 0:
            raise ImageError(f"tar | docker import failed (tar exit {tar_rc}): "
                             f"{imported.stderr.strip()}")
        log.info("docker import %s done in %.1fs", tag, time.perf_counter() - t)
    finally:
        _unmount_under(rootfs)  # never rmtree through a mounted /proc
        shutil.rmtree(rootfs, ignore_errors=True)
    return tag


def _unmount_under(root: Path) -> None:
    """Unmount every file system mounted at or below ``root``, deepest first."""
    prefix = str(root.resolve())
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[1].replace("\\040", " ") for line in mounts if len(line.split()) > 1]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")),
                        key=len, reverse=True):
        done = subprocess.run(["umount", "-l", point], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise ImageError(f"cannot unmount {point} left by debootstrap: "
                             f"{done.stderr.strip()}; unmount it by hand, then retry")


def apt_mirror(suite: str = DEBIAN_SUITE, etc: Path = Path("/etc/apt")) -> str:
    """The Debian mirror URI this machine's apt sources use for ``suite`` (deb822
    ``*.sources`` or one-line ``*.list``); the first non-security archive if none names it."""
    entries: list[tuple[str, list[str]]] = []  # (uri, suites) of each "deb" source
    for path in sorted(etc.glob("sources.list.d/*.sources")):
        for stanza in path.read_text(errors="replace").split("\n\n"):
            fields = _deb822(stanza)
            if "deb" in fields.get("types", "").split() and \
                    fields.get("enabled", "yes").lower() != "no":
                for uri in fields.get("uris", "").split():
                    entries.append((uri, fields.get("suites", "").split()))
    for path in [etc / "sources.list", *sorted(etc.glob("sources.list.d/*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] != ["deb"]:
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # [arch=amd64 signed-by=...]
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = words[1:]
            if len(words) >= 2:
                entries.append((words[0], [words[1]]))
    entries = [(uri, suites) for uri, suites in entries
               if uri.split(":", 1)[0] in ("http", "https", "file", "ftp")]
    for uri, suites in entries:
        if suite in suites:
            return uri
    for uri, suites in entries:
        if not any("security" in s for s in suites) and "security" not in uri:
            return uri
    raise ImageError(f"no Debian mirror found in {etc}/sources.list(.d); pass one with "
                     "--mirror http://deb.debian.org/debian (or CHAOSLAB_IMAGE_MIRROR)")


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


# --- wheelhouse ------------------------------------------------------------------------------

def project_requirements(root: Path) -> list[str]:
    """The ``[project] dependencies`` of pyproject.toml: what the images need at run time."""
    with (root / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _ensure_wheelhouse(root: Path, say: Progress) -> tuple[Path, bool]:
    requirements = project_requirements(root)
    key = _digest({"requirements": requirements, **WHEEL_TARGET})[:12]
    houses = root / ".wheelhouse"
    house = houses / key
    if (house / ".complete").is_file():
        return house, False
    houses.mkdir(exist_ok=True)
    tmp = houses / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", WHEEL_TARGET["python_version"],
           "--implementation", WHEEL_TARGET["implementation"],
           *[arg for p in WHEEL_TARGET["platforms"] for arg in ("--platform", p)],
           "-d", str(tmp), "-r", str(tmp / "requirements.txt")]
    say(f"image 2/3: downloading {len(requirements)} requirements' wheels into the "
        "wheelhouse")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ImageError("pip download of the image's wheels failed (the host needs access to "
                         f"the package index, or a pip config pointing at a mirror):\n"
                         f"{done.stderr.strip()[-2000:]}")
    (tmp / ".complete").write_text(json.dumps({"requirements": requirements, **WHEEL_TARGET}))
    for old in houses.iterdir():  # older wheelhouses are caches of other requirement sets
        if old.name != tmp.name:
            shutil.rmtree(old, ignore_errors=True)
    tmp.rename(house)
    return house, True


# --- image -----------------------------------------------------------------------------------

def _source_files(root: Path) -> list[tuple[str, Path]]:
    """``(relative path, file)`` of every project source that goes into the image, sorted."""
    files = []
    for package in SOURCE_PACKAGES:
        for path in (root / package).rglob("*"):
            rel = path.relative_to(root)
            if path.is_file() and not _IGNORED_PARTS & set(rel.parts) \
                    and path.suffix not in _IGNORED_SUFFIXES:
                files.append((rel.as_posix(), path))
    if not files:
        raise ImageError(f"no sources under {root}/{{{','.join(SOURCE_PACKAGES)}}}")
    return sorted(files)


def _content_hash(dockerfile: Path, base_id: str, wheelhouse: Path,
                  sources: list[tuple[str, Path]]) -> str:
    """sha256 over the Dockerfile, the base image id, every wheelhouse file and every source
    file (each as name, length, bytes), so any change to what goes in changes the tag."""
    h = hashlib.sha256()

    def feed(name: str, data: bytes) -> None:
        for part in (name.encode(), data):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)

    feed("dockerfile", dockerfile.read_bytes())
    feed("base", base_id.encode())
    for path in sorted(wheelhouse.iterdir()):
        if not path.name.startswith("."):
            feed(f"wheels/{path.name}", path.read_bytes())
    for rel, path in sources:
        feed(f"src/{rel}", path.read_bytes())
    return h.hexdigest()


def _build(client, root: Path, work: Path, dockerfile: Path, wheelhouse: Path,
           sources: list[tuple[str, Path]], base_ref: str, tag: str, digest: str,
           *, nocache: bool) -> None:
    context = work / f"context-{digest[:12]}"
    shutil.rmtree(context, ignore_errors=True)
    try:
        (context / "wheels").mkdir(parents=True)
        shutil.copy2(dockerfile, context / "Dockerfile")
        for path in wheelhouse.iterdir():
            if not path.name.startswith("."):
                _link_or_copy(path, context / "wheels" / path.name)
        for rel, path in sources:
            target = context / "src" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(path, target)
        log.info("docker build %s on %s (network %s)", tag, base_ref, BUILD_NETWORK)
        lines: list[str] = []
        for chunk in client.api.build(
                path=str(context), tag=tag, buildargs={"BASE_IMAGE": base_ref}, rm=True,
                forcerm=True, pull=False, nocache=nocache, network_mode=BUILD_NETWORK,
                decode=True, labels={HASH_LABEL: digest}):
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.strip():
                        lines.append(line)
                        log.debug("build: %s", line)
            if "error" in chunk:
                tail = "\n".join(lines[-20:])
                raise ImageError(f"docker build of {tag} failed: {chunk['error'].strip()}\n"
                                 f"last output:\n{tail}")
    finally:
        shutil.rmtree(context, ignore_errors=True)
    if not _image_exists(client, tag):
        raise ImageError(f"docker build reported success but {tag} does not exist")


def _prune_stale_tags(client, repository: str, *, keep: str) -> None:
    """Untag older content-hash builds of ``repository`` (their shared layers stay cached);
    images still used by a container are left alone."""
    import docker

    for image in client.images.list(name=repository, filters={"label": HASH_LABEL}):
        for old in image.tags:
            if old != keep and not old.endswith(":latest") and old.startswith(f"{repository}:"):
                try:
                    client.images.remove(old)
                    log.info("removed stale image %s", old)
                except docker.errors.APIError as exc:
                    log.debug("kept %s: %s", old, exc)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# --- helpers ---------------------------------------------------------------------------------

def _image_exists(client, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _project_root(given: Path | None) -> Path:
    root = Path(given) if given else Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "compose" / "Dockerfile").is_file():
        raise ImageError(f"{root} is not a chaoslab checkout (pyproject.toml and "
                         "compose/Dockerfile expected); install with `pip install -e .` "
                         "or pass project_root")
    return root


@contextmanager
def _locked(path: Path, say: Progress) -> Iterator[None]:
    """One build at a time per checkout (parallel test workers share the cache)."""
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("image: another build of this checkout is running; waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m chaos.runtime.images", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=env.get("CHAOSLAB_IMAGE_BASE", AUTO),
                        help=f"'{AUTO}' (default: {DEFAULT_BASE} if present or pullable, "
                             f"else a debootstrap base), '{DEBOOTSTRAP}', or an image "
                             "reference [CHAOSLAB_IMAGE_BASE]")
    parser.add_argument("--force", action="store_true",
                        default=env.get("CHAOSLAB_IMAGE_FORCE", "") not in ("", "0"),
                        help="run docker build (without layer cache) even if the tag exists "
                             "[CHAOSLAB_IMAGE_FORCE]")
    parser.add_argument("--mirror", default=env.get("CHAOSLAB_IMAGE_MIRROR"),
                        help="Debian mirror for debootstrap (default: from /etc/apt sources) "
                             "[CHAOSLAB_IMAGE_MIRROR]")
    parser.add_argument("-v", "--verbose", action="store_true", help="show docker build output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        info = prepare_image(rebuild=args.force, base=args.base, mirror=args.mirror)
    except ImageError as exc:
        print(f"chaos.runtime.images: {exc}", file=sys.stderr)
        return 1
    print(info.tag)
    steps = {"base": info.base_built, "wheelhouse": info.wheelhouse_built,
             "image": info.image_built}
    for step, built in steps.items():
        print(f"{step:<10} {info.timings[step]:7.2f} s  {'built' if built else 'reused'}",
              file=sys.stderr)
    print(f"{'total':<10} {info.timings['total']:7.2f} s  (base {info.base})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
