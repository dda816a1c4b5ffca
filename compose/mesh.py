"""Write compose/proxies.json and compose/links.json for a cluster of N nodes.

    python compose/mesh.py [--nodes 3]

Every directed link ``src -> dst`` (chaos.topology.all_links) gets its own proxy, named
``src__dst``, in the proxy container, listening on

    port = 20000 + 100 * index(src) + index(dst)
    index: registry = 0, node-K = K (1..89), client = 90

so ``client -> registry`` is 29000, ``client -> node-2`` is 29002, ``registry -> node-1`` is
20001, ``node-1 -> registry`` is 20100 and ``node-1 -> node-2`` is 20102. The client's proxies
are published on 127.0.0.1 (same port number on the host); the others stay inside the network.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chaos.topology import CLIENT, REGISTRY, Link, all_links

HERE = Path(__file__).resolve().parent
PROXY_HOST = "proxy"  # the proxy's service name in docker-compose.yml
UPSTREAM = {REGISTRY: "registry:5000"}  # nodes: node-K:5001


def index(participant: str) -> int:
    if participant == REGISTRY:
        return 0
    if participant == CLIENT:
        return 90
    number = int(participant.removeprefix("node-"))
    if not 1 <= number <= 89:
        raise ValueError(f"node numbers go from 1 to 89, got {participant}")
    return number


def port(link: Link) -> int:
    return 20000 + 100 * index(link.src) + index(link.dst)


def mesh(nodes: int) -> tuple[list[dict], dict[str, dict[str, str]]]:
    links = sorted(all_links([f"node-{k}" for k in range(1, nodes + 1)]), key=port)
    proxies = [{"name": link.name, "listen": f"0.0.0.0:{port(link)}",
                "upstream": UPSTREAM.get(link.dst, f"{link.dst}:5001"), "enabled": True}
               for link in links]
    table: dict[str, dict[str, str]] = {}
    for link in links:
        host = "127.0.0.1" if link.src == CLIENT else PROXY_HOST
        table.setdefault(link.src, {})[link.dst] = f"{host}:{port(link)}"
    return proxies, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    proxies, table = mesh(args.nodes)
    (HERE / "proxies.json").write_text(json.dumps(proxies, indent=2) + "\n")
    (HERE / "links.json").write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    print(f"{len(proxies)} proxies for {args.nodes} nodes written to {HERE}")


if __name__ == "__main__":
    main()
