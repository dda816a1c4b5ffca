"""Checkers: pure functions of a history (and the final reads) returning a :class:`Verdict`.

Each is a small frozen value registered by name, so a scenario lists the ones it wants::

    Scenario(checkers=(Availability(min_ratio=0.95), NoLostWrites()))
    Scenario(checkers=("availability", "durability"))      # the same, by name, defaults
"""

from chaos.checkers.availability import Availability
from chaos.checkers.base import (
    CHECKERS,
    Checker,
    Compose,
    Validity,
    Verdict,
    compose,
    make_checker,
    register,
)
from chaos.checkers.breaker import Breakers
from chaos.checkers.convergence import Convergence
from chaos.checkers.durability import NoLostWrites
from chaos.checkers.failover import Failover
from chaos.checkers.latency import LatencyPerWindow
from chaos.checkers.linearizable import Linearizable
from chaos.checkers.recovery import HerdPeak, RetryAmplification
from chaos.checkers.session import ReadYourWrites
from chaos.checkers.stale import StaleReads

__all__ = ["Validity", "Verdict", "Checker", "CHECKERS", "register", "make_checker", "compose",
           "Compose", "Availability", "NoLostWrites", "LatencyPerWindow", "ReadYourWrites", "HerdPeak",
           "Convergence", "StaleReads", "Failover", "Breakers", "Linearizable", "RetryAmplification"]
