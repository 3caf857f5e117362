"""Finding the resident behind a notice in the pseudonymised register.

The gateway compares keyed tokens only (``keys.tokens``): it never sees a name, birth
date, address or BSN. Each token type is a conjunction of fields::

    bsn             BSN
    naam_init_geb   surname, initial, birth date
    pc_hnr_geb      address, birth date
    naam_pc_hnr     surname, address
    fon_init_geb    surname sound, initial, birth date
    fon_pc_hnr      surname sound, address
    init_pc_hnr     initial, address
    init2_pc_hnr    first two initials, address (persons with two initials or more)

**Candidates** are the persons that share at least one token with the notice: the
tokens are the blocking, so nothing is compared against the whole register.

**Score.** For each candidate the matcher infers, per field, whether it agrees,
disagrees or is unknown. A token both sides hold proves that all its fields agree. A
token type both sides have but do not share proves that at least one of its fields
differs; when all its other fields are known to agree, that one field disagrees (a
candidate sharing ``naam_pc_hnr`` but not ``pc_hnr_geb`` has another birth date). A
field that one side lacks stays unknown. The score adds a weight per agreeing field
and subtracts one per disagreeing field (``WEIGHTS``; log-odds in spirit: a birth
date agreeing is rare by chance, an address differing is common because people move).

**Decision.** The best candidate is accepted when its score reaches ``ACCEPT`` and
leads the runner-up by ``MARGIN``; a parent and child with the same initial at one
address, on a notice without a birth date, tie and go to review. A BSN that agrees
is enough on its own (health insurers' BSNs are checked against the BRP); one that
differs counts a little more than a differing birth date: enough to keep a resident's
look-alike out, not so much that one wrong number outweighs everything else agreeing.
A best score below ``REVIEW`` means the person is not in the register
(``not_resident``). An accepted person who died or moved out of the gemeente closes
the signal with that status.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy import Connection, Engine, select

from gateway.register import TYPE_BITS
from gateway.store.engine import reading
from gateway.store.schema import register_persons, register_tokens, registers

__all__ = [
    "ACCEPT",
    "MARGIN",
    "REVIEW",
    "WEIGHTS",
    "Label",
    "Match",
    "labels_of",
    "Matcher",
    "Outcome",
    "score",
]

Outcome = Literal["matched", "review", "not_resident", "moved_out", "deceased"]

FIELDS: dict[str, tuple[str, ...]] = {
    "bsn": ("bsn",),
    "naam_init_geb": ("name", "initial", "birth"),
    "pc_hnr_geb": ("address", "birth"),
    "naam_pc_hnr": ("name", "address"),
    "fon_init_geb": ("sound", "initial", "birth"),
    "fon_pc_hnr": ("sound", "address"),
    "init_pc_hnr": ("initial", "address"),
    "init2_pc_hnr": ("initials2", "address"),
}
"""The fields each token type is made of (``keys.tokens.TOKEN_TYPES``)."""

WEIGHTS: dict[str, tuple[int, int]] = {
    "bsn": (25, -12),
    "name": (8, -2),
    "sound": (6, -2),
    "initial": (3, -3),
    "birth": (14, -10),
    "address": (10, -3),
    "initials2": (2, -6),
}
"""Per field: what agreement adds and what disagreement adds. The surname counts once:
as ``name`` when it agrees exactly, else as ``sound`` when only its phonetic key does.

A birth date is what sets one person apart from the rest of a household; surname and
address are shared by the household, so a differing birth date outweighs them both
together with the initial (a parent and child of one initial), while address and
birth date agreeing outweigh a surname and initial that differ (swapped or misspelt
names at the right address). Two initials agreeing add little to the first; differing,
they tell two people of one surname and first initial apart."""

ACCEPT = 18
"""Lowest score accepted: surname, initial and address; surname, initial and birth
date; address and birth date; or the BSN alone."""
MARGIN = 6
"""How far the accepted candidate must lead the runner-up."""
REVIEW = 11
"""Lowest best score that goes to review rather than ``not_resident``."""
CHUNK = 5_000
"""Tokens per ``IN`` list."""


@dataclass(frozen=True)
class Label:
    """A routing label of a person: ``geregelde_betaling``, or ``schuldhulp`` with team."""

    label: str
    team: str | None


def labels_of(stored: str) -> tuple[Label, ...]:
    """A person's labels as ``register_persons.labels`` keeps them (a JSON list)."""
    return tuple(Label(x["label"], x["team"]) for x in json.loads(stored))


@dataclass(frozen=True)
class Match:
    """What the register says about a notice's person; ``reason`` goes to the audit."""

    outcome: Outcome
    reason: str
    person: str | None = None
    household: str | None = None
    district: str | None = None
    labels: tuple[Label, ...] = ()
    score: int | None = None
    margin: int | None = None
    candidates: int = 0


@dataclass(frozen=True)
class _Person:
    pseudonym: str
    household: str
    district: str
    status: str
    labels: str
    types: int


def score(hits: Iterable[str], mutual: Iterable[str], *, fewer_initials: bool = False) -> int:
    """The score of a candidate sharing tokens of the types ``hits``, where ``mutual``
    are the token types that notice and candidate both have. ``fewer_initials``: the
    notice gives two initials or more where the register has one given name."""
    hit = set(hits)
    agree = {f for kind in hit for f in FIELDS[kind]}
    disagree: set[str] = set()
    for kind in set(mutual) - hit:
        unknown = [f for f in FIELDS[kind] if f not in agree]
        if len(unknown) == 1:
            disagree.add(unknown[0])
    if fewer_initials and "address" in agree:
        disagree.add("initials2")
    # The surname counts once: exactly, else by its sound, else as differing.
    if "name" in agree:
        agree.discard("sound")
        disagree -= {"name", "sound"}
    elif "sound" in agree:
        disagree.discard("name")
    elif "sound" in disagree:
        disagree = (disagree - {"sound"}) | {"name"}
    return sum(WEIGHTS[f][0] for f in agree) + sum(WEIGHTS[f][1] for f in disagree)


def _score(hits: set[str], carried: frozenset[str], has: frozenset[str]) -> int:
    fewer = "init2_pc_hnr" in carried and "init_pc_hnr" in has and "init2_pc_hnr" not in has
    return score(hits, carried & has, fewer_initials=fewer)


def _types(mask: int) -> frozenset[str]:
    return frozenset(kind for kind, bit in TYPE_BITS.items() if mask & bit)


class Matcher:
    """Matches notices' tokens against the register of their gemeente."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def match(
        self, gemeente: str, kid: str, notices: Sequence[Mapping[str, Sequence[str]]]
    ) -> list[Match]:
        """One ``Match`` per notice; ``notices`` are their token values by type, all
        made with the linkage secret ``kid``."""
        with reading(self._engine) as conn:
            return self.match_in(conn, gemeente, kid, notices)

    def match_in(
        self,
        conn: Connection,
        gemeente: str,
        kid: str,
        notices: Sequence[Mapping[str, Sequence[str]]],
    ) -> list[Match]:
        """``match`` on an open connection."""
        current = conn.execute(
            select(registers.c.kid, registers.c.version).where(registers.c.gemeente == gemeente)
        ).first()
        if current is None:
            return [Match("review", "no_register") for _ in notices]
        if current.kid != kid:
            return [Match("review", "kid_mismatch") for _ in notices]
        register = (gemeente, current.version)
        wanted = {token for values in notices for tokens in values.values() for token in tokens}
        owners = _owners(conn, register, wanted)
        persons = _persons(conn, register, {p for found in owners.values() for _, p in found})
        return [self._decide(values, owners, persons) for values in notices]

    @staticmethod
    def _decide(
        values: Mapping[str, Sequence[str]],
        owners: Mapping[str, list[tuple[str, str]]],
        persons: Mapping[str, _Person],
    ) -> Match:
        hits: dict[str, set[str]] = defaultdict(set)
        for kind, tokens in values.items():
            for token in tokens:
                for owner_kind, pseudonym in owners.get(token, ()):
                    if owner_kind == kind:
                        hits[pseudonym].add(kind)
        if not hits:
            return Match("not_resident", "no_candidate")
        carried = frozenset(kind for kind, tokens in values.items() if tokens)
        ranked = sorted(
            ((_score(kinds, carried, _types(persons[p].types)), p) for p, kinds in hits.items()),
            reverse=True,
        )
        best, pseudonym = ranked[0]
        runner_up = ranked[1][0] if len(ranked) > 1 else None
        margin = best - runner_up if runner_up is not None else None
        scored = Match("review", "ambiguous", score=best, margin=margin, candidates=len(ranked))
        if best < REVIEW:
            return replace(scored, outcome="not_resident", reason="below_review")
        if best < ACCEPT:
            return replace(scored, reason="below_accept")
        if margin is not None and margin < MARGIN:
            return scored
        person = persons[pseudonym]
        outcome: Outcome = "matched"
        if person.status == "deceased":
            outcome = "deceased"
        elif person.status == "moved_out":
            outcome = "moved_out"
        return replace(
            scored,
            outcome=outcome,
            reason="accepted",
            person=person.pseudonym,
            household=person.household or None,
            district=person.district or None,
            labels=labels_of(person.labels),
        )


def _owners(
    conn: Connection, register: tuple[str, int], tokens: set[str]
) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    ordered = sorted(tokens)
    columns = register_tokens.c
    for start in range(0, len(ordered), CHUNK):
        rows = conn.execute(
            select(columns.token, columns.type, columns.pseudonym).where(
                columns.gemeente == register[0],
                columns.version == register[1],
                columns.token.in_(ordered[start : start + CHUNK]),
            )
        )
        for token, kind, pseudonym in rows:
            found[token].append((kind, pseudonym))
    return found


def _persons(
    conn: Connection, register: tuple[str, int], pseudonyms: set[str]
) -> dict[str, _Person]:
    found: dict[str, _Person] = {}
    ordered = sorted(pseudonyms)
    columns = register_persons.c
    for start in range(0, len(ordered), CHUNK):
        rows = conn.execute(
            select(
                columns.pseudonym,
                columns.household,
                columns.district,
                columns.status,
                columns.labels,
                columns.types,
            )
            .where(columns.gemeente == register[0], columns.version == register[1])
            .where(columns.pseudonym.in_(ordered[start : start + CHUNK]))
        )
        for row in rows:
            found[row.pseudonym] = _Person(*row)
    return found
