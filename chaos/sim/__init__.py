"""The deterministic simulation: the whole cluster in one process, on virtual time.

- :mod:`chaos.sim.loop`: the virtual-time event loop;
- :mod:`chaos.sim.network`: the simulated link mesh, the in-process transport and processes;
- :mod:`chaos.sim.traffic`: the workload's users and the final reads, in process.

The runtime built on them is :class:`chaos.runtime.sim.SimRuntime` (``--runtime sim``).
"""

from chaos.sim.loop import SimDeadlock, VirtualLoop
from chaos.sim.network import Network, Process, SimLinks, SimTransport

__all__ = ["VirtualLoop", "SimDeadlock", "Network", "Process", "SimLinks", "SimTransport"]
