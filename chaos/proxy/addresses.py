"""``host:port`` addresses as Toxiproxy writes them (``[v6]:port`` for IPv6)."""

from __future__ import annotations

from chaos.proxy import errors


def split(address: str, *, field: str, allow_zero: bool) -> tuple[str, int]:
    """Parse ``host:port``; an empty host means 127.0.0.1 (never all interfaces by accident)."""
    if not isinstance(address, str) or ":" not in address:
        raise errors.bad_request(f"{field} must be host:port, got {address!r}")
    host, _, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit():
        raise errors.bad_request(f"{field} has an invalid port: {address!r}")
    port = int(port_text)
    if port > 65535 or (port == 0 and not allow_zero):
        raise errors.bad_request(f"{field} port out of range: {address!r}")
    if any(c.isspace() for c in host) or "/" in host:
        raise errors.bad_request(f"{field} has an invalid host: {address!r}")
    return host or "127.0.0.1", port


def join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
