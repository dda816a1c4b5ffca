"""A Toxiproxy-compatible fault proxy: ``python -m chaos.proxy`` serves Toxiproxy 2.x's HTTP API.

Modules, one concept each: ``toxics`` (toxic types, registered by name), ``rng`` (seeded draws),
``link`` (one proxied connection and its two directions), ``server`` (a proxy's listener),
``collection`` (the set of proxies), ``api`` (the Starlette app), ``request_ids`` (the xids of
``X-Toxiproxy-Request-Id``), ``metrics`` (``/metrics``, with ``--proxy-metrics``), ``process``
(run the server as a child process), ``testing`` (helpers shared by the tests).
"""

VERSION = "2.12.0+chaoslab"

__all__ = ["VERSION"]
