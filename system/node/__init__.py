"""A storage node: a durable replica store with hinted handoff and rebalancing."""

from system.node.app import NodeService, create_app

__all__ = ["NodeService", "create_app"]
