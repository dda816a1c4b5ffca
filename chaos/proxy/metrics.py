"""Byte counters per proxy and direction, rendered in Prometheus' text format like Toxiproxy's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class ByteMeter:
    """Bytes read from the source (received) and written to the destination (sent)."""

    received: int = 0
    sent: int = 0


_HELP = {
    "received": "The total bytes received from the source (read by the proxy)",
    "sent": "The total bytes sent to the destination (written by the proxy)",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(rows: Iterable[tuple[str, str, str, str, ByteMeter]]) -> str:
    """Rows of (proxy, listener, upstream, direction, meter) as Prometheus text."""
    rows = list(rows)
    lines: list[str] = []
    for kind in ("received", "sent"):
        metric = f"toxiproxy_proxy_{kind}_bytes_total"
        lines.append(f"# HELP {metric} {_HELP[kind]}")
        lines.append(f"# TYPE {metric} counter")
        for proxy, listener, upstream, direction, meter in rows:
            labels = (f'direction="{_label(direction)}",listener="{_label(listener)}",'
                      f'proxy="{_label(proxy)}",upstream="{_label(upstream)}"')
            lines.append(f"{metric}{{{labels}}} {getattr(meter, kind)}")
    return "\n".join(lines) + "\n"
