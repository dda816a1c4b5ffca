"""``python -m chaos.proxy``: the Toxiproxy-compatible server (API and proxies on one loop).

    python -m chaos.proxy --host 127.0.0.1 --port 8474 [--config proxies.json] [--seed N]
                          [--proxy-metrics]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson
import uvicorn

from chaos.proxy import VERSION, errors
from chaos.proxy.api import create_app
from chaos.proxy.collection import ProxyCollection

log = logging.getLogger("chaos.proxy")

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ServerConfig:
    """The server's settings, read once from the command line."""

    host: str = "127.0.0.1"
    port: int = 8474
    config: Path | None = None
    seed: int | None = None
    log_level: str = "info"
    proxy_metrics: bool = False


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="python -m chaos.proxy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="API address (default 127.0.0.1; the API has no authentication, "
                             "never publish it beyond loopback)")
    parser.add_argument("--port", type=int, default=8474, help="API port (default 8474)")
    parser.add_argument("--config", type=Path, default=None,
                        help="JSON list of proxies, as for POST /populate, applied at start")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for toxicity and jitter draws (default: random, logged)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument("--proxy-metrics", action="store_true",
                        help="serve per-proxy byte counters on GET /metrics (Prometheus text); "
                             "without it /metrics is 404, as in toxiproxy-server")
    ns = parser.parse_args(argv)
    if not 0 <= ns.port <= 65535:
        parser.error(f"--port must be 0..65535, got {ns.port}")
    return ServerConfig(host=ns.host, port=ns.port, config=ns.config, seed=ns.seed,
                        log_level=ns.log_level, proxy_metrics=ns.proxy_metrics)


def _load_config(path: Path) -> object:
    try:
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise SystemExit(f"chaos.proxy: cannot read --config {path}: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise SystemExit(f"chaos.proxy: --config {path} is not valid JSON: {exc}") from exc


async def serve(config: ServerConfig) -> None:
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    log.info("chaos.proxy %s, seed %d (replay with --seed %d)", VERSION, seed, seed)
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("API bound to %s: it has no authentication, publish it on loopback only",
                    config.host)
    collection = ProxyCollection(seed=seed)
    try:
        if config.config is not None:
            try:
                proxies = await collection.populate(_load_config(config.config))
            except errors.ApiError as exc:
                raise SystemExit(f"chaos.proxy: --config {config.config}: {exc.message}") from exc
            log.info("populated %d proxies from %s", len(proxies), config.config)
        app = create_app(collection, proxy_metrics=config.proxy_metrics)
        server = uvicorn.Server(uvicorn.Config(
            app, host=config.host, port=config.port, log_config=None,
            log_level=config.log_level, access_log=False, lifespan="off", loop="none",
            http="httptools", ws="none"))
        await server.serve()
    finally:
        collection.close()


def _loop_factory():
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency via uvicorn[standard]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with asyncio.Runner(loop_factory=_loop_factory) as runner:
        runner.run(serve(config))


if __name__ == "__main__":
    main()
