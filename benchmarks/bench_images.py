"""How long the chaoslab image takes to make on this machine: prints figures, asserts nothing.

    python benchmarks/bench_images.py [--cold] [--no-source-change] [--base auto]

1. ``prepare_image`` as it stands (with ``--cold``: after deleting the chaoslab images, the
   local base image and the wheelhouse, so base, wheelhouse and image are all built);
2. a no-change rebuild, in process and as ``python -m chaos.runtime.images`` (target <= 5 s);
3. a one-line source change, built in a scratch copy of the project as ``chaoslab-bench``
   (removed afterwards), to show what the layer cache saves.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from chaos.runtime import images

ROOT = Path(__file__).resolve().parents[1]
BENCH_REPOSITORY = "chaoslab-bench"


def forget_everything(client) -> None:
    """Remove what a cold build makes: chaoslab images (with their untagged build stages),
    the local base image and the wheelhouse. Other images are left alone."""
    ours = [image for repository in (images.REPOSITORY, BENCH_REPOSITORY, images.BASE_REPOSITORY)
            for image in client.images.list(name=repository)]
    roots = {image.id for image in ours}
    for dangling in client.images.list(all=True, filters={"dangling": True}):
        if roots & {layer.get("Id") for layer in dangling.history()}:
            client.images.remove(dangling.id, force=True)
    for image in ours:  # bases last: the images built on them go first
        for tag in image.tags:
            client.images.remove(tag, force=True)
    shutil.rmtree(ROOT / ".wheelhouse", ignore_errors=True)


def show(title: str, build: images.ImageBuild) -> None:
    print(f"{title}: {build.tag} on {build.base}")
    for step, built in (("base", build.base_built), ("wheelhouse", build.wheelhouse_built),
                        ("image", build.image_built)):
        print(f"  {step:<11} {build.timings[step]:8.2f} s  {'built' if built else 'reused'}")
    print(f"  {'total':<11} {build.timings['total']:8.2f} s")


def source_change(base: str) -> float:
    """Build time after a one-line source change, in a scratch copy of the project."""
    with tempfile.TemporaryDirectory(prefix="chaoslab-bench-") as tmp:
        root = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for package in ("system", "chaos", "compose"):
            shutil.copytree(ROOT / package, root / package, ignore=ignore)
        shutil.copy2(ROOT / "pyproject.toml", root)
        shutil.copytree(ROOT / ".wheelhouse", root / ".wheelhouse", copy_function=os.link)
        images.prepare_image(base=base, project_root=root, repository=BENCH_REPOSITORY)
        with (root / "system" / "__init__.py").open("a") as f:
            f.write(f"# bench {time.time()}\n")
        changed = images.prepare_image(base=base, project_root=root,
                                       repository=BENCH_REPOSITORY)
        assert changed.image_built
        client = docker.from_env()
        try:
            for image in client.images.list(name=BENCH_REPOSITORY):
                for tag in image.tags:
                    client.images.remove(tag, force=True)
        finally:
            client.close()
        return changed.timings["image"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true",
                        help="delete chaoslab images, the local base and the wheelhouse first")
    parser.add_argument("--no-source-change", action="store_true")
    parser.add_argument("--base", default=images.AUTO)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    client = docker.from_env()
    try:
        if args.cold:
            forget_everything(client)
    finally:
        client.close()
    show("cold build" if args.cold else "build (caches as they are)",
         images.prepare_image(base=args.base))

    again = images.prepare_image(base=args.base)
    assert not again.image_built
    show("no-change rebuild, in process", again)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chaos.runtime.images", "--base", args.base], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = time.perf_counter() - t
    print(f"no-change rebuild, `python -m chaos.runtime.images`: {cli:.2f} s (target <= 5 s)")
    if not args.no_source_change:
        print(f"one-line source change, image build: {source_change(args.base):.2f} s")


if __name__ == "__main__":
    main()
