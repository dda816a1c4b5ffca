"""The cluster in containers: prints figures, asserts nothing.

    python benchmarks/bench_docker.py [--duration 6] [--concurrency 16]

1. image: a no-change ``prepare_image`` (target: at most 5 s);
2. cold start from built images to every service ready, per part (target: at most 10 s for
   proxy + registry + 3 nodes);
3. the cluster benchmark's write-only and 50/50 runs through the smart client, in containers
   (every link through the proxy) and on the local runtime with the same mesh, and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bench_cluster import row, run, via_client

from chaos.runtime.base import ClusterSpec
from chaos.runtime.docker import DockerRuntime
from chaos.runtime.images import prepare_image
from chaos.runtime.local import LocalRuntime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--starts", type=int, default=3, help="cold starts to time")
    args = p.parse_args()

    build = prepare_image()
    t = time.perf_counter()
    again = prepare_image()
    print(f"image {again.tag}: no-change rebuild {time.perf_counter() - t:.2f}s "
          f"(built: {again.image_built}); first call {build.timings['total']:.2f}s")

    print(f"\n{'cold start':<12} {'proxy':>7} {'registry':>9} {'3 nodes':>8} {'total':>7}")
    for i in range(args.starts):
        rt = DockerRuntime(ClusterSpec(), image=build.tag)
        try:
            rt.start()
            tm = rt.timings
            print(f"run {i + 1:<8} {tm['proxy']:>6.2f}s {tm['registry']:>8.2f}s "
                  f"{tm['nodes']:>7.2f}s {tm['total']:>6.2f}s")
        finally:
            rt.stop()

    print(f"\n{'':<34} {'writes/s':>8} {'p50':>7} {'p99':>7} {'reads/s':>8} {'p50':>7} {'p99':>7} "
          f"{'errors':>6}")
    results = {}
    for name in ("docker", "local"):
        with tempfile.TemporaryDirectory() as tmp:
            rt = (DockerRuntime(ClusterSpec(), image=build.tag) if name == "docker"
                  else LocalRuntime(ClusterSpec(mesh=True), workdir=tmp))
            ep = rt.start()
            try:
                for label, ratio in (("writes only", 1.0), ("50/50", 0.5)):
                    res = run(via_client(ep.registry, args, ratio))
                    results[(name, label)] = res[0]
                    row(f"{name} + mesh, {label}", res)
            finally:
                rt.stop()
    for label in ("writes only", "50/50"):
        d, loc = results[("docker", label)], results[("local", label)]
        ops = sum(d[k]["per_s"] for k in ("write", "read"))
        base = sum(loc[k]["per_s"] for k in ("write", "read"))
        print(f"docker / local throughput, {label}: {ops / base:.2f}")


if __name__ == "__main__":
    main()
