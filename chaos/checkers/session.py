"""Online checks for one client session (a Locust user), run while the traffic goes on."""

from __future__ import annotations

__all__ = ["ReadYourWrites"]


class ReadYourWrites:
    """An online check for one client session whose operations run one after another (a
    Locust user): a read must return the key's last acknowledged write, or a value whose write
    failed after it (a failed write may still have reached a replica), or nothing if no write
    of the key was acknowledged yet."""

    def __init__(self) -> None:
        self.allowed: dict[str, set[str | None]] = {}  # key -> what a read may return

    def wrote(self, key: str, value: str, acknowledged: bool) -> None:
        if acknowledged:
            self.allowed[key] = {value}
        else:
            self.allowed.setdefault(key, {None}).add(value)

    def keys(self) -> list[str]:
        return list(self.allowed)

    def problem(self, key: str, value: str | None) -> str | None:
        """None if ``value`` is a legal read of ``key``, else what is wrong with it."""
        allowed = self.allowed.get(key, {None})
        if value in allowed:
            return None
        shown = sorted(repr(v if v is None else v[:24]) for v in allowed)
        more = f" (and {len(shown) - 5} more)" if len(shown) > 5 else ""
        got = repr(value if value is None else value[:24])
        return f"stale read of {key}: got {got}, expected one of {', '.join(shown[:5])}{more}"
