"""The live dashboard in a real headless Chromium: a node killed under it turns its tile
from alive to dead within the registry's heartbeat thresholds, and back to alive once it is
restarted; the ring and the traffic panels are drawn."""

from __future__ import annotations

import time

import httpx

from chaos.dashboard import find_target
from chaos.dashboard.web import DEFAULT_INTERVAL, Dashboard
from chaos.wait import wait_for

VICTIM = "node-2"
MARGIN = 3.0  # seconds for the page to hear of it: a poll, the event, the render


def tile_status(browser, node: str) -> str | None:
    return browser.execute_script(
        "const t = document.querySelector(`#nodes [data-node='${arguments[0]}']`);"
        "return t ? t.dataset.status : null;", node)


def test_a_killed_node_turns_dead_and_alive_again_on_the_page(cluster, browser, shot):
    registry = cluster.endpoints().registry_direct
    s = httpx.get(f"{registry}/cluster-status", timeout=5).json()["settings"]
    dead_within = s["dead_after"] * s["heartbeat_interval"] + DEFAULT_INTERVAL + MARGIN
    alive_within = s["heartbeat_interval"] + DEFAULT_INTERVAL + MARGIN

    with Dashboard(find_target(registry=registry)) as dash:
        browser.get(dash.url)
        wait_for(lambda: all(tile_status(browser, n) == "alive" for n in cluster.node_ids()),
                 timeout=15, interval=0.1, description="every tile alive")
        arcs = browser.execute_script("return document.querySelectorAll('#ring path').length")
        assert arcs == len(cluster.node_ids()) * s["vnodes"]
        assert browser.execute_script(
            "return document.querySelector('#t-replica b').textContent") != ""
        shot("dashboard-alive")

        seen: list[str] = []

        def victim_is(status: str):
            def check() -> bool:
                now = tile_status(browser, VICTIM)
                if not seen or seen[-1] != now:
                    seen.append(now)
                return now == status
            return check

        killed = time.monotonic()
        cluster.kill(VICTIM)
        took = wait_for(victim_is("dead"), timeout=dead_within, interval=0.05,
                        description=f"{VICTIM}'s tile to turn dead")
        assert seen[0] == "alive" and seen[-1] == "dead", seen
        wait_for(lambda: browser.execute_script(
            f"return document.querySelector(`[data-node='{VICTIM}']`).dataset.reachable")
            == "no", timeout=5, interval=0.05, description=f"{VICTIM} shown unreachable")
        assert time.monotonic() - killed <= dead_within
        others = {n: tile_status(browser, n) for n in cluster.node_ids() if n != VICTIM}
        assert set(others.values()) == {"alive"}, others
        shot("dashboard-node-dead")

        cluster.restart(VICTIM)  # returns once the node is ready
        seen.clear()
        wait_for(victim_is("alive"), timeout=alive_within, interval=0.05,
                 description=f"{VICTIM}'s tile to turn alive again")
        shot("dashboard-node-back")
    assert took <= dead_within
