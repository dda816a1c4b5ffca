"""``host:port`` addresses as Toxiproxy writes them (``[v6]:port`` for IPv6)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

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


async def resolve_host(host: str) -> str:
    """The IP a listener on ``host`` binds: like Go's ``net.Listen``, the first IPv4 address.

    Raises ``OSError`` (``socket.gaierror``) if the name does not resolve.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"no address for {host}")
    ipv4 = [info for info in infos if info[0] == socket.AF_INET]
    return str((ipv4 or infos)[0][4][0])


async def resolve_listen(address: str) -> str:
    """``address`` as Toxiproxy reports it once listening: ``localhost:P`` is ``127.0.0.1:P``."""
    host, port = split(address, field="listen", allow_zero=True)
    return join(await resolve_host(host), port)
