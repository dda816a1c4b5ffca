"""``chaoslab status --watch``: the dashboard in the terminal, a live Rich view of the same
snapshots (:class:`~chaos.dashboard.collect.Collector`) refreshed until Ctrl-C."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from chaos.dashboard.collect import Collector, Target

__all__ = ["render", "watch"]

STYLES = {"alive": "green", "healthy": "green", "closed": "green", "suspect": "yellow",
          "degraded": "yellow", "half_open": "yellow", "dead": "red", "critical": "red",
          "open": "red", "left": "dim", "unknown": "dim"}


def _styled(value: str | None) -> Text:
    value = value or "-"
    return Text(value, style=STYLES.get(value, ""))


def _num(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _traffic(label: str, t: dict | None) -> str:
    if not t:
        return f"{label}: -"
    return (f"{label}: {t['rate']:.0f}/s, errors {_pct(t['error_rate'])}, "
            f"p99 {_num(t['p99_ms'], 1, ' ms')}")


def render(snapshot: dict) -> RenderableType:
    """One frame: a header line, the node table, traffic, faults (pure: a snapshot in)."""
    if "error" in snapshot and "nodes" not in snapshot:
        return Text(f"poll failed: {snapshot['error']}", style="red")
    s = snapshot.get("settings") or {}
    head = Text.assemble("health ", _styled(snapshot.get("health")),
                         f"  N={s.get('n', '?')} W={s.get('w', '?')} R={s.get('r', '?')}  "
                         f"{snapshot.get('source', '')}")
    if snapshot.get("run"):
        run = snapshot["run"]
        head.append(f"  scenario {run['scenario']} seed {run['seed']}"
                    + ("" if run.get("running") else " (ended)"))
    if not snapshot.get("registry_ok"):
        head.append(f"\nregistry {snapshot.get('registry')} does not answer: "
                    f"{snapshot.get('registry_error')}", style="red")
    table = Table("node", "status", "heartbeat", "keys", "ring share", "vnodes", "hints",
                  "req/s", "errors", "p99", "breaker", title="nodes", title_justify="left")
    for n in snapshot.get("nodes", []):
        t = n.get("traffic") or {}
        b = n.get("breaker")
        breaker = _styled(b["state"]) if b else Text("-", style="dim")
        if b and b["state"] != "closed":
            breaker.append(f" {b['counts']['open']}/{b['clients']}")
        table.add_row(n["id"], _styled(n["status"]),
                      _num(n.get("since_heartbeat"), 1, " s ago"),
                      str(n["keys"]) if n.get("keys") is not None else
                      ("-" if n.get("reachable") else "unreachable"),
                      _pct(n.get("share")), str(n.get("vnodes") or 0),
                      str(n.get("hints_pending", "-")), _num(t.get("rate"), 0),
                      _pct(t.get("error_rate")), _num(t.get("p99_ms"), 1, " ms"), breaker)
    tr = snapshot.get("traffic") or {}
    traffic = Text(f"{_traffic('gateway operations', tr.get('gateway'))}\n"
                   f"{_traffic('replica requests', tr.get('replica'))}"
                   f"  (over the last {tr.get('window_s', '?')} s)")
    faults = snapshot.get("faults") or []
    if faults:
        lines = Text("faults active now:\n", style="bold")
        for f in faults:
            heal = "" if f.get("heals_in_s") is None else \
                f", heals in {max(0.0, f['heals_in_s']):.1f} s"
            lines.append(f"  {f['fault']} for {f['age_s']:.1f} s{heal}\n", style="red")
    elif snapshot.get("run"):
        lines = Text("faults active now: none", style="dim")
    else:
        lines = Text("no scenario is running against this cluster", style="dim")
    return Group(head, table, traffic, lines)


async def _loop(target: Target, live: Live, interval: float, until: float | None) -> None:
    async with Collector(target) as collector:
        while until is None or time.monotonic() < until:
            live.update(render(await collector.poll()), refresh=True)
            await asyncio.sleep(interval)  # pacing of the refreshes


def watch(target: Target, *, interval: float = 0.5, console: Console | None = None,
          duration: float | None = None) -> None:
    """Refresh the view every ``interval`` seconds until Ctrl-C (or for ``duration``)."""
    console = console or Console(highlight=False)
    until = None if duration is None else time.monotonic() + duration
    with Live(Text("polling…"), console=console, auto_refresh=False,
              redirect_stdout=False) as live:
        try:
            asyncio.run(_loop(target, live, interval, until))
        except KeyboardInterrupt:
            pass
