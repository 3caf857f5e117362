"""The municipality's side of an objection: who objected, as tokens and a pseudonym.

The register office looks the person up in its own BRP extract by BSN and writes what
the gateway needs to recognise their signals: the pseudonym (the same one the register
gives the gateway) and the match tokens that single the person out (BSN, or a birth
date with the name or the address). For someone not in the extract, the tokens come
from the fields the person gave. Neither the name nor the BSN leaves this home.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from adapters.errors import RowInvalid
from adapters.register import BRPRow, PseudonymKey
from keys.tokens import PersonFields, Tokeniser

STRONG_TOKENS = ("bsn", "naam_init_geb", "pc_hnr_geb")
"""The token types an objection carries (``gateway.policy.STRONG_TOKENS``)."""
OBJECTION_VERSION = 1


def objection(
    *,
    ref: str,
    gemeente: str,
    tokeniser: Tokeniser,
    person: PersonFields,
    pseudonym: str | None,
    starts: date,
    ends: date | None = None,
    creditors: Sequence[str] = (),
    categories: Sequence[str] = (),
) -> dict[str, Any]:
    """The objection record the gateway registers (docs/policy.md, "Objections")."""
    values = tokeniser.tokens(person, include_bsn=True)
    strong = {t: v for t, v in values.items() if t in STRONG_TOKENS}
    if pseudonym is None and not strong:
        raise RowInvalid(1, "geboortedatum", "an objection needs a birth date or a BSN")
    record: dict[str, Any] = {
        "v": OBJECTION_VERSION,
        "gemeente": gemeente,
        "ref": ref,
        "person": pseudonym,
        "tokens": {"kid": tokeniser.kid, "values": strong} if strong else None,
        "creditors": list(creditors),
        "categories": [c.upper() for c in categories],
        "starts": starts.isoformat(),
        "ends": ends.isoformat() if ends else None,
    }
    return record


def find_by_bsn(rows: Iterable[BRPRow], bsn: str) -> BRPRow | None:
    """The person of the extract with ``bsn``, if any."""
    return next((row for row in rows if row.bsn == bsn), None)


def objection_from_brp(
    rows: Iterable[BRPRow],
    bsn: str,
    *,
    pseudonyms: PseudonymKey,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """The objection of the person with ``bsn`` in the extract; None when not in it."""
    row = find_by_bsn(rows, bsn)
    if row is None:
        return None
    return objection(person=row.person, pseudonym=pseudonyms.person(row.bsn), **kwargs)
