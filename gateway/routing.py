"""Where a signal goes, once the register has said who it is about (DOMAIN.md,
"Routing in practice").

    matched resident   → a label's team (schuldhulp: their current team; another
                         label: the team configured for it), else their district's
                         team, else the municipality's default team
    review             → the back office, which resolves it by hand
    not resident, moved out, deceased → closed with that status, delivered to nobody

Every team a signal may go to must be a recipient of the municipality's outreach key
set; the contact block is stripped to that one recipient. A district or label team
missing from the key set sends the signal to the back office rather than refusing it:
the receipt must not depend on who the person is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gateway.matching import Match, Matcher
from gateway.schema import Notice
from gateway.settings import GemeenteRouting
from gateway.store.engine import reading
from keys.errors import KeySetInvalid
from keys.jwk import OIN, KeyID
from keys.outreach import OutreachKeySet

if TYPE_CHECKING:
    from gateway.service import Gateway

Status = Literal["routed", "review", "closed"]

SCHULDHULP = "schuldhulp"

KidOf = Callable[[str], KeyID | None]
"""The kid of a team's key in the municipality's key set, None when it has none."""


@dataclass(frozen=True)
class Route:
    """Where one signal goes: a recipient and the key its block is stripped to, or
    nobody (``closed``); ``reason`` says why, for the audit log."""

    status: Status
    reason: str
    match: Match
    recipient: OIN | None = None
    kid: KeyID | None = None
    closed_as: str | None = None
    """The outcome of a signal the policy closed after matching (``objection``)."""
    policy: tuple[tuple[str, str], ...] = ()
    """The policy decision's fields for the audit log (``Decision.audit_fields``)."""

    @property
    def outcome(self) -> str:
        """What the notice's row records as its outcome."""
        return self.closed_as or self.match.outcome


@dataclass(frozen=True)
class Unroutable:
    """The notice's municipality cannot take signals; the sender may learn this."""

    cause: str


@dataclass(frozen=True)
class Outreach:
    """A municipality that can take signals: its routing and verified outreach key set."""

    routing: GemeenteRouting
    keyset: OutreachKeySet

    @property
    def kids(self) -> frozenset[KeyID]:
        return frozenset(k.kid for k in self.keyset.keys)

    def kid_of(self, team: str) -> KeyID | None:
        """The kid of ``team``'s key in the key set (a ``KidOf``), None when it has none."""
        try:
            return self.keyset.recipient(team).key.kid
        except KeySetInvalid:
            return None


class Router:
    """Matches and routes the notices of one batch; each municipality is read once."""

    def __init__(self, gw: Gateway) -> None:
        self._gw = gw
        self._matcher = Matcher(gw.engine)
        self._gemeenten: dict[str, Outreach | Unroutable] = {}

    def route_all(self, batch: Sequence[Notice]) -> list[Route | Unroutable]:
        """One route per notice, in order; matching runs once per municipality and kid."""
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        results: list[Route | Unroutable | None] = [None] * len(batch)
        for index, notice in enumerate(batch):
            found = self._gemeente(notice.gemeente)
            if isinstance(found, Unroutable):
                results[index] = found
            else:
                groups[notice.gemeente, notice.tokens.kid].append(index)
        for (gemeente, kid), indexes in groups.items():
            matches = self._matcher.match(
                gemeente,
                kid,
                [batch[i].tokens.values for i in indexes],
                [batch[i].tokens.encodings for i in indexes],
            )
            place = self._gemeenten[gemeente]
            assert isinstance(place, Outreach)
            for index, match in zip(indexes, matches, strict=True):
                results[index] = route(place.routing, place.kid_of, match)
        return [r for r in results if r is not None]

    def place(self, gemeente: str) -> Outreach | Unroutable:
        """The municipality's routing and key set, read once per router."""
        return self._gemeente(gemeente)

    def _gemeente(self, gemeente: str) -> Outreach | Unroutable:
        if gemeente not in self._gemeenten:
            self._gemeenten[gemeente] = outreach(self._gw, gemeente)
        return self._gemeenten[gemeente]


def outreach(gw: Gateway, gemeente: str) -> Outreach | Unroutable:
    """The municipality's routing and verified key set, read afresh; ``Unroutable``
    when it has none, or its back office or default team has no key in the set."""
    routing = gw.settings.routing.get(gemeente)
    if routing is None:
        return Unroutable("no routing for this gemeente")
    with reading(gw.engine) as conn:
        try:
            keyset = gw.directory.outreach_keyset(conn, gemeente)
        except KeySetInvalid as exc:
            return Unroutable(exc.cause)
    if keyset is None:
        return Unroutable("no outreach key set for this gemeente")
    place = Outreach(routing, keyset)
    if place.kid_of(routing.backoffice) is None or place.kid_of(routing.default_team) is None:
        return Unroutable("back office or default team not in the key set")
    return place


def route(routing: GemeenteRouting, kid_of: KidOf, match: Match) -> Route:
    """The route for one match under one municipality's routing."""
    if match.outcome in ("not_resident", "moved_out", "deceased"):
        return Route("closed", match.outcome, match)
    if match.outcome == "review":
        return _to(routing.backoffice, "review", "backoffice", match, kid_of)
    team, reason = _team(routing, match)
    decided = _to(team, "routed", reason, match, kid_of)
    if decided.kid is None:
        return _to(routing.backoffice, "review", "team_not_in_keyset", match, kid_of)
    return decided


def _team(routing: GemeenteRouting, match: Match) -> tuple[str, str]:
    for label in match.labels:
        if label.label == SCHULDHULP and label.team:
            return label.team, f"label:{SCHULDHULP}"
    for label in match.labels:
        team = routing.labels.get(label.label)
        if team is not None:
            return team, f"label:{label.label}"
    team = routing.district_team(match.district)
    if team is not None:
        return team, "district"
    return routing.default_team, "default_team"


def _to(team: str, status: Status, reason: str, match: Match, kid_of: KidOf) -> Route:
    return Route(status, reason, match, OIN(team), kid_of(team))
