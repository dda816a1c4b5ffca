"""Faults: small frozen values with ``bind``, ``apply`` and ``undo``, registered by name.

One module per family: :mod:`~chaos.faults.process` (kill, stop, pause, restart,
registry-down), :mod:`~chaos.faults.network` (partition, latency, bandwidth, blackhole,
reset-peer, flap), :mod:`~chaos.faults.cluster` (scale-up), :mod:`~chaos.faults.clock`
(clock-skew); partition plans are pure
functions in :mod:`~chaos.faults.grudges`. ``parse_fault("kill:node-1")`` builds one from
its written form.
"""

from chaos.faults import grudges
from chaos.faults.base import FAULTS, Fault, FaultBase, FaultError, parse_fault, register, require
from chaos.faults.clock import ClockSkew
from chaos.faults.cluster import ScaleUp
from chaos.faults.network import Bandwidth, Blackhole, Flap, Latency, Partition, ResetPeer
from chaos.faults.process import Kill, Pause, RegistryDown, Restart, Stop

__all__ = ["Fault", "FaultBase", "FaultError", "FAULTS", "register", "require", "parse_fault",
           "grudges", "Kill", "Stop", "Pause", "Restart", "RegistryDown", "Partition",
           "Latency", "Bandwidth", "Blackhole", "ResetPeer", "Flap", "ScaleUp", "ClockSkew"]
