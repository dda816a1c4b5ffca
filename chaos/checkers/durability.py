"""Durability: no acknowledged write is lost (judged on the final reads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History, OpType

__all__ = ["NoLostWrites"]


@register("durability")
@dataclass(frozen=True, slots=True)
class NoLostWrites:
    """The final value of every key must be one a correct register could hold: the value of
    a write (acknowledged or indeterminate) that no acknowledged write strictly followed in
    real time. A key whose last acknowledged write is superseded by an older value is lost."""

    name: str = "durability"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        writes: dict[str, list] = {}
        for inv, comp in history.completions():
            if inv.is_client and inv.f == "write" and comp.type is not OpType.FAIL:
                writes.setdefault(inv.key, []).append((inv, comp))
        acked = {k: [w for w in ws if w[1].type is OpType.OK] for k, ws in writes.items()}
        acked = {k: ws for k, ws in acked.items() if ws}
        if not acked:
            return Verdict(self.name, Validity.UNKNOWN, "no acknowledged writes")
        lost, unread = {}, []
        for key, ws in acked.items():
            if key not in final:
                unread.append(key)
                continue
            # the latest invocation among acknowledged writes bounds what may still be visible
            horizon = max(inv.time for inv, _ in ws)
            allowed = {inv.value for inv, comp in writes[key]
                       if comp.type is OpType.INFO or comp.time >= horizon}
            if final[key] not in allowed:
                newest = max(ws, key=lambda w: w[1].time)[0]
                lost[key] = {"read": final[key], "last_acknowledged": newest.value,
                             "acceptable": sorted(map(str, allowed))[:5]}
        if lost:
            return Verdict(self.name, Validity.INVALID,
                           f"{len(lost)} of {len(acked)} keys lost an acknowledged write",
                           {"lost": dict(list(lost.items())[:20]), "checked": len(acked)})
        if unread:
            return Verdict(self.name, Validity.UNKNOWN,
                           f"{len(unread)} keys could not be read back", {"unread": unread[:20]})
        return Verdict(self.name, Validity.VALID,
                       f"all {len(acked)} keys hold their last acknowledged write",
                       {"checked": len(acked)})
