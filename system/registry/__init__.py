"""The registry: membership from heartbeats, the quorum gateway, and admin operations."""

from system.registry.app import create_app

__all__ = ["create_app"]
