"""The live dashboard of a running cluster: ``chaoslab dashboard`` (a page updated with
server-sent events, on 127.0.0.1 only) and ``chaoslab status --watch`` (the same in the
terminal, with Rich).

Both show snapshots of one :class:`~chaos.dashboard.collect.Collector`, which reads the
cluster's own endpoints (``/cluster-status``, each node's ``/stats``, every service's
Prometheus ``/metrics``) and a running scenario's live files (:mod:`chaos.live`). Modules:
``rates`` (pure: rates and quantiles from two scrapes), ``collect`` (where the cluster is,
and polling it), ``web`` (the server), ``page`` (the HTML), ``terminal`` (the Rich view).
"""

from chaos.dashboard.collect import Collector, NoCluster, Target, TargetError, find_target

__all__ = ["Collector", "Target", "TargetError", "NoCluster", "find_target"]
