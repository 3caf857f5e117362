"""Where a signal goes. Until matching lands: the municipality's default team."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.schema import Notice
from keys.jwk import OIN, KeyID
from keys.outreach import OutreachKeySet

if TYPE_CHECKING:
    from gateway.service import Gateway
from gateway.store.engine import reading


@dataclass(frozen=True)
class Route:
    """The one recipient a signal goes to, the key its contact block is stripped to."""

    recipient: OIN
    kid: KeyID
    reason: str
    keyset_kids: frozenset[KeyID]


class Router:
    """Routes the notices of one batch; each municipality's key set is read once."""

    def __init__(self, gw: Gateway) -> None:
        self._gw = gw
        self._keysets: dict[str, OutreachKeySet | None] = {}

    def route(self, notice: Notice) -> Route | None:
        """The default team of the notice's municipality, or None when it has none."""
        team = self._gw.settings.default_teams.get(notice.gemeente)
        if team is None:
            return None
        if notice.gemeente not in self._keysets:
            with reading(self._gw.engine) as conn:
                self._keysets[notice.gemeente] = self._gw.directory.outreach_keyset(
                    conn, notice.gemeente
                )
        keyset = self._keysets[notice.gemeente]
        if keyset is None:
            return None
        kids = frozenset(k.kid for k in keyset.keys)
        return Route(OIN(team), keyset.recipient(team).key.kid, "default_team", kids)
