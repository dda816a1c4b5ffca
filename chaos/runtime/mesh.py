"""The link mesh as the faults see it: a set of :class:`~chaos.topology.Link` values, each
behind its own proxy on a Toxiproxy-compatible server.

Faults speak in links, never in proxy names or addresses; this class turns a cut or a toxic on
a set of links into Toxiproxy API calls (so the real Toxiproxy works as a drop-in).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from chaos.topology import Link
from chaos.toxiproxy import Toxiproxy, ToxiproxyError

__all__ = ["LinkProxies", "known_links"]


class LinkProxies:
    """The proxies of a cluster's links on one Toxiproxy server."""

    def __init__(self, toxiproxy: Toxiproxy) -> None:
        self.toxiproxy = toxiproxy
        self._links: set[Link] = set()

    @property
    def url(self) -> str:
        return self.toxiproxy.url

    def links(self) -> frozenset[Link]:
        return frozenset(self._links)

    def create(self, link: Link, upstream: str, *, listen: str) -> str:
        """Create the proxy of ``link``; returns the address it listens on as the server
        reports it."""
        info = self.toxiproxy.create(link.name, upstream, listen=listen)
        self._links.add(link)
        return info.listen

    def _known(self, links: Iterable[Link]) -> list[Link]:
        return known_links(links, self._links, "proxy for link(s)")

    def disable(self, links: Iterable[Link]) -> None:
        """Cut: open connections close, new ones are refused."""
        for link in self._known(links):
            self.toxiproxy.disable(link.name)

    def enable(self, links: Iterable[Link]) -> None:
        for link in self._known(links):
            self.toxiproxy.enable(link.name)

    def add_toxic(self, links: Iterable[Link], type: str, *, name: str,
                  stream: str = "downstream", toxicity: float = 1.0, **attributes: Any) -> None:
        for link in self._known(links):
            self.toxiproxy.add_toxic(link.name, type, name=name, stream=stream,
                                     toxicity=toxicity, **attributes)

    def remove_toxic(self, links: Iterable[Link], name: str) -> None:
        """Remove the toxic ``name`` where it exists (safe to repeat)."""
        for link in self._known(links):
            try:
                self.toxiproxy.remove_toxic(link.name, name)
            except ToxiproxyError as exc:
                if exc.status != 404:
                    raise

    def delete_all(self) -> None:
        """Delete every proxy this mesh created (an external Toxiproxy outlives the run)."""
        for link in sorted(self._links):
            with contextlib.suppress(ToxiproxyError):
                self.toxiproxy.delete(link.name)
        self._links.clear()


def known_links(links: Iterable[Link], mesh: set[Link] | frozenset[Link], what: str) -> list[Link]:
    """``links`` in a stable order (sorted: the same order in every run), or a KeyError
    naming those ``mesh`` does not have."""
    links = sorted(links)
    unknown = [str(link) for link in links if link not in mesh]
    if unknown:
        raise KeyError(f"no {what} {', '.join(unknown)}; this mesh has {len(mesh)} links")
    return links
