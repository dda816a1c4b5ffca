"""The named scenarios: ``chaoslab scenarios`` lists them, ``chaoslab run NAME`` runs one.

Each is the no-op scenario with a schedule and the thresholds it is judged by. Times are for
the default 12 s of traffic; ``chaoslab run NAME --duration D`` stretches them
(:meth:`Scenario.with_duration`).
"""

from __future__ import annotations

from chaos.checkers import (
    Availability,
    Breakers,
    Convergence,
    Failover,
    HerdPeak,
    Linearizable,
    NoLostWrites,
    RetryAmplification,
    StaleReads,
)
from chaos.faults import (
    Blackhole,
    ClockSkew,
    Flap,
    Kill,
    Latency,
    Partition,
    Pause,
    RegistryDown,
    ScaleUp,
)
from chaos.nemesis import Schedule
from chaos.scenario import Scenario
from chaos.traffic import Workload

__all__ = ["SCENARIOS", "DEFAULT", "scenario_named"]

NOOP = Scenario()
ALL_OK = (Availability(min_ratio=1.0), NoLostWrites(), StaleReads())
CAUGHT_UP = (*ALL_OK, Convergence())  # and every replica holds the newest copy after


def _one(name: str, description: str, fault, *, checkers=ALL_OK, at: float = 3.0,
         duration: float = 5.0) -> Scenario:
    return NOOP.but(name=name, description=description, checkers=checkers,
                    schedule=Schedule.single(fault, at=at, duration=duration))


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    NOOP.but(name="noop", description="no fault: the baseline every other run is held to",
             checkers=ALL_OK),
    _one("kill-one", "SIGKILL one node under load, restart it: every operation succeeds, and "
         "the restarted node catches up", Kill("node-1"), checkers=CAUGHT_UP),
    NOOP.but(name="kill-two", description="two of three nodes killed: writes fail with the "
             "counts (503), nothing acknowledged is lost, and the retries of the clients add "
             "at most 2x the replica requests per operation (their breakers open)",
             # measured: 1.2x; with breakers that never open 2.9x
             checkers=(NoLostWrites(), RetryAmplification(max_ratio=2.0)),
             schedule=Schedule.of((Kill("node-1"), 3.0, 4.0), (Kill("node-2"), 3.5, 3.5))),
    _one("pause-one", "freeze one node (SIGSTOP): breakers open, traffic fails over, and no "
         "burst hits it when it resumes", Pause("node-2"),
         # breakers open after 3 timeouts of 0.5 s; writes go on with the other two owners;
         # the peers hand the resumed node what it missed at 250 records/s each, with
         # jittered gaps: 2.4x measured (all at once, handoff_rate=0: 12x-19x)
         checkers=(*ALL_OK, Failover(max_s=1.5), HerdPeak(max_ratio=5.0), Breakers())),
    _one("isolate-one", "cut one node off from its peers, the registry and the clients",
         Partition.isolating("node-3", clients=True)),
    _one("split", "a minority/majority split; the registry and the clients stay with the "
         "majority", Partition.splitting("node-1", clients=True)),
    _one("one-way", "node-1 cannot reach its peers or the registry (its heartbeats are lost); "
         "they and the clients still reach it", Partition.one_way("node-1", ("node-2", "node-3",
                                                                            "registry"))),
    _one("slow-replica", "200 ms more on every link into one replica: W=2 never waits for it",
         Latency.symmetric("node-1", 100)),
    _one("flapping", "one node's links, its clients' too, cut and restored every second",
         Flap("node-2", 1.0, clients=True)),
    _one("blackhole", "one node accepts connections and answers nothing: calls time out",
         Blackhole("node-3")),
    _one("registry-down", "the registry dies: smart clients go on from their cached members",
         RegistryDown()),
    _one("scale-up", "a fourth node joins under load: keys rebalance, nothing fails",
         ScaleUp(), duration=0.0, checkers=CAUGHT_UP),
    _one("clock-skew", "node-2's clock runs 5 s behind while every node coordinates writes of "
         "shared keys: hybrid logical clocks lose no update", ClockSkew("node-2", -5000),
         checkers=(*ALL_OK, Linearizable())).but(
        workload=Workload(client="gateway", gateways="nodes", pattern="shared", keys=50)),
    NOOP.but(name="full-outage", description="every node killed, then all restarted: "
             "acknowledged writes survive",
             checkers=(NoLostWrites(),),
             schedule=Schedule.of((Kill("node-1"), 3.0, 4.0), (Kill("node-2"), 3.0, 4.0),
                                  (Kill("node-3"), 3.0, 4.0))),
)}

DEFAULT = "kill-one"


def scenario_named(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}: choose one of "
                         f"{', '.join(SCENARIOS)}") from None
