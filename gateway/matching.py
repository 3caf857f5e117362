"""Finding the resident behind a notice in the pseudonymised register.

The gateway compares keyed tokens only (``keys.tokens``): it never sees a name, birth
date, address or BSN. Each token type is a conjunction of fields
(``keys.tokens.TOKEN_FIELDS``)::

    bsn             BSN
    naam_init_geb   surname, initial, birth date
    pc_hnr_geb      postcode, house number, birth date
    naam_pc_hnr     surname, postcode, house number
    fon_init_geb    surname sound, initial, birth date
    fon_pc_hnr      surname sound, postcode, house number
    init_pc_hnr     initial, postcode, house number
    init2_pc_hnr    first two initials, postcode, house number (two initials or more)
    pc_geb          postcode, birth date
    naam_geb        surname, birth date
    init_geb_hnr    initial, birth date, house number
    naam_init2_geb  surname, first two initials, birth date (two initials or more)
    init_geb        initial, birth date

Each field is left out of some type, so one field written wrongly (or two, such as
surname and postcode) still leaves a token in common.

**Candidates** are the persons that share at least one token with the notice: the
tokens are the blocking, so nothing is compared against the whole register.
``init_geb`` is looked up only for a notice whose other tokens find nobody, and makes a
candidate only of a person whose surname's fuzzy encoding is nearly the notice's
(``NEARLY``), or a little less so with a given name in common (``NEARLY_GIVEN``).

**Fuzzy encodings** (``keys.bloom``) of surnames, address, birth date and given names,
where notice and person carry them, adjust the score where the tokens did not show a
field to agree (``FUZZY``, ``fuzzy_points``), and away from the address a rare surname
in common counts for more (``rare_points``).

**Score.** For each candidate the matcher infers, per field, whether it agrees,
disagrees or is unknown. A token both sides hold proves that all its fields agree. A
token type both sides have but do not share proves that at least one of its fields
differs; when all its other fields are known to agree, that one field disagrees (a
candidate sharing ``naam_pc_hnr`` but not ``pc_hnr_geb`` has another birth date), and
when the two left are postcode and house number, the address differs, which counts as
the postcode differing (people move). A field that one side lacks stays unknown. The
score adds a weight per agreeing field and subtracts one per disagreeing field
(``WEIGHTS``; log-odds in spirit: a birth date agreeing is rare by chance, an address
differing is common because people move). Two more rules concern the initials, when
the first agrees: two initials or more on the notice where the register has one given
name differ (``initials2``); one initial on the notice where the register has two given
names or more counts ``SHORT``, since another person with that first initial (a
relative at the address, a look-alike elsewhere) gives one initial as readily as the
person does; but not away from the address with the birth date agreeing and a surname
few carry (``FEW``), where a look-alike is rare.

**Decision.** The best candidate is accepted when its score reaches ``ACCEPT`` and
leads the runner-up by ``MARGIN``; a parent and child with the same initial at one
address, on a notice without a birth date, tie and go to review. A BSN that agrees
is enough on its own (health insurers' BSNs are checked against the BRP); one that
differs counts a little more than a differing birth date: enough to keep a resident's
look-alike out, not so much that one wrong number outweighs everything else agreeing.
A best score below ``REVIEW`` means the person is not in the register
(``not_resident``). An accepted person who died or moved out of the gemeente closes
the signal with that status.

**Register size.** ``ACCEPT`` and ``REVIEW`` hold for a register of ``BASE_PERSONS``
persons or more. A coincidence (someone else sharing a combination of fields) is as
likely as the register is large, so a smaller register needs less evidence: both are
lowered by one point per halving of its size, by at most ``MAX_SHIFT``
(``size_shift``). This does not touch what a household shares (surname and address):
a relative at the address scores the same in a register of any size.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import orjson
from sqlalchemy import BigInteger, Connection, Engine, String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from gateway.register import TYPE_BITS, TYPE_NUMBERS, surname_key, token_keys
from gateway.store.engine import reading
from gateway.store.schema import RegisterTables, register_tables, registers
from keys.bloom import similarity, unpack
from keys.tokens import TOKEN_FIELDS

__all__ = [
    "ACCEPT",
    "BASE_PERSONS",
    "MARGIN",
    "MAX_SHIFT",
    "RARE",
    "RARE_POINTS",
    "REVIEW",
    "SHORT",
    "WEIGHTS",
    "Label",
    "Match",
    "FEW",
    "FUZZY",
    "Fuzzy",
    "labels_of",
    "Matcher",
    "Outcome",
    "fuzzy_points",
    "judge",
    "rare_points",
    "score",
    "size_shift",
    "weigh",
]

Outcome = Literal["matched", "review", "not_resident", "moved_out", "deceased"]

FIELDS: dict[str, tuple[str, ...]] = dict(TOKEN_FIELDS)
"""The fields each token type is made of (``keys.tokens.TOKEN_FIELDS``)."""
ADDRESS = frozenset({"postcode", "huisnummer"})

SHORT = -4
"""One initial on the notice where the register has two given names or more."""

WEIGHTS: dict[str, tuple[int, int]] = {
    "bsn": (25, -12),
    "name": (8, -2),
    "sound": (6, -2),
    "initial": (3, -3),
    "birth": (14, -10),
    "postcode": (7, -3),
    "huisnummer": (3, -1),
    "initials2": (2, -6),
    "short": (0, SHORT),
}
"""Per field: what agreement adds and what disagreement adds. The surname counts once:
as ``name`` when it agrees exactly, else as ``sound`` when only its phonetic key does.

A birth date is what sets one person apart from the rest of a household; surname and
address are shared by the household, so a differing birth date outweighs them both
together with the initial (a parent and child of one initial), while address and
birth date agreeing outweigh a surname and initial that differ (swapped or misspelt
names at the right address). The address is postcode and house number: together they
add 10, the postcode alone 7 (the house number written wrongly); a differing postcode
costs 3 (moved), a differing house number at the same postcode 1. Two initials
agreeing add little to the first; differing, they tell two people of one surname and
first initial apart."""

ACCEPT = 18
"""Lowest score accepted (in a register of ``BASE_PERSONS`` or more): surname, initial
and address; surname, initial and birth date; address and birth date; or the BSN."""
MARGIN = 6
"""How far the accepted candidate must lead the runner-up."""
REVIEW = 11
"""Lowest best score that goes to review rather than ``not_resident``."""
BASE_PERSONS = 100_000
"""The register size for which ``ACCEPT`` and ``REVIEW`` are set."""
MAX_SHIFT = 4
"""At most this much lower for a small register."""
CHUNK = 5_000
"""Tokens per ``IN`` list."""


def size_shift(persons: int) -> int:
    """How many points ``ACCEPT`` and ``REVIEW`` are lowered for a register of
    ``persons``: log2(``BASE_PERSONS`` / persons) rounded, from 0 to ``MAX_SHIFT``."""
    if persons >= BASE_PERSONS:
        return 0
    return min(MAX_SHIFT, round(math.log2(BASE_PERSONS / max(persons, 1))))


@dataclass(frozen=True)
class Label:
    """A routing label of a person: ``geregelde_betaling``, or ``schuldhulp`` with team."""

    label: str
    team: str | None


def labels_of(stored: str) -> tuple[Label, ...]:
    """A person's labels as ``register_persons.labels`` keeps them (a JSON list)."""
    return tuple(Label(x["label"], x["team"]) for x in orjson.loads(stored))


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
    fuzzy: bytes | None


def judge(
    hits: Iterable[str],
    mutual: Iterable[str],
    *,
    more_initials: bool = False,
    fewer_initials: bool = False,
) -> tuple[frozenset[str], frozenset[str]]:
    """The fields (``WEIGHTS``' keys) that agree and that disagree for a candidate
    sharing tokens of the types ``hits``, where ``mutual`` are the token types that
    notice and candidate both have. ``more_initials``: the notice gives two initials or
    more where the register has one given name; ``fewer_initials``: the notice gives one
    initial where the register has two or more. Either counts only when the first
    initial agrees."""
    hit = set(hits)
    agree = {f for kind in hit for f in FIELDS[kind]}
    if "name" in agree:
        agree.add("sound")
    if "initials2" in agree:
        agree.add("initial")
    disagree: set[str] = set()
    for kind in set(mutual) - hit:
        unknown = {f for f in FIELDS[kind] if f not in agree}
        if len(unknown) == 1:
            disagree |= unknown
        elif unknown == ADDRESS:
            disagree.add("postcode")
    if "initial" in agree and "initials2" not in agree:
        if more_initials:
            disagree.add("initials2")
        elif fewer_initials:
            disagree.add("short")
    # The surname counts once: exactly, else by its sound, else as differing.
    if "name" in agree:
        agree.discard("sound")
        disagree -= {"name", "sound"}
    elif "sound" in agree:
        disagree.discard("name")
    elif "sound" in disagree:
        disagree = (disagree - {"sound"}) | {"name"}
    return frozenset(agree), frozenset(disagree)


def weigh(agree: Iterable[str], disagree: Iterable[str]) -> int:
    """The score of fields that agree and fields that disagree (``WEIGHTS``)."""
    return sum(WEIGHTS[f][0] for f in agree) + sum(WEIGHTS[f][1] for f in disagree)


def score(
    hits: Iterable[str],
    mutual: Iterable[str],
    *,
    more_initials: bool = False,
    fewer_initials: bool = False,
) -> int:
    """The score of a candidate (``judge``'s fields, weighed)."""
    return weigh(*judge(hits, mutual, more_initials=more_initials, fewer_initials=fewer_initials))


@dataclass(frozen=True)
class Fuzzy:
    """How one fuzzy field's similarity (``keys.bloom.similarity``) counts, where the
    tokens did not show its exact counterparts (``fields``) to agree."""

    fields: frozenset[str]
    close: float
    """From this similarity on the field counts as written differently but the same
    (a typo, a swap): ``close_points`` replace what the disagreement of its
    counterparts and of ``refunds`` cost, unless a field of ``unless`` disagrees."""
    close_points: int
    far: float
    """Below this similarity the field is another value: ``far_points`` are added,
    unless all the fields of ``far_unless`` agree, and only if all of ``far_if`` do."""
    far_points: int
    unless: frozenset[str] = frozenset()
    far_unless: frozenset[str] = frozenset()
    refunds: frozenset[str] = frozenset()
    far_if: frozenset[str] = frozenset()


FUZZY: dict[str, Fuzzy] = {
    "naam": Fuzzy(frozenset({"name", "sound"}), 0.80, 5, 0.72, -6, far_unless=frozenset(ADDRESS)),
    "geb": Fuzzy(frozenset({"birth"}), 0.84, 2, 0.0, 0, unless=frozenset({"initial"})),
    "adres": Fuzzy(
        frozenset({"postcode", "huisnummer"}), 0.85, 4, 0.0, 0, unless=frozenset({"initial"})
    ),
    "voornaam": Fuzzy(
        frozenset(),
        0.80,
        3,
        0.72,
        -4,
        unless=frozenset({"initial", "initials2"}),
        refunds=frozenset({"short"}),
        far_if=frozenset({"initial"}),
    ),
}
"""Per fuzzy field (``keys.bloom.CARRIED``). A surname one letter off scores from 0.80
in nine cases out of ten, an unrelated one about 0.55 (0.4 % from 0.80, 97 % below
0.72); a clearly other surname counts against a candidate, unless postcode and house
number agree: at the address a surname in use or given names and surname swapped are
common, while a postcode and birth date in common are found by chance in a large
register. A birth date one digit off scores
0.82 to 0.94 (95 % from 0.84), an unrelated one about 0.6, but a relative's can come
as close, so a close birth date or address does not count for someone whose initial
differs. A birth date or address that differs already costs its weight. A given name
one letter off scores from 0.80 in 85 % of cases, another of the same initial in under
1 % (84 % of those below 0.72); a given name in common with the first initial agreeing
lifts the charge for a single initial (``SHORT``), which is there for another person
of that initial, and another given name counts against."""


def _closest(
    theirs: Mapping[str, list[bytes]] | None, ours: Mapping[str, list[bytes]] | None, field: str
) -> float:
    """The highest similarity of the two sides' encodings of ``field``; 0.0 without."""
    if not theirs or not ours or field not in theirs or field not in ours:
        return 0.0
    return max(similarity(a, b) for a in theirs[field] for b in ours[field])


def fuzzy_points(
    agree: frozenset[str],
    disagree: frozenset[str],
    theirs: Mapping[str, list[bytes]],
    ours: Mapping[str, list[bytes]],
) -> int:
    """What the fuzzy encodings of a notice (``theirs``) and a candidate (``ours``) add
    to the score of ``judge``'s fields ``agree`` and ``disagree``."""
    points = 0
    for field, rule in FUZZY.items():
        if field not in theirs or field not in ours or agree & rule.fields:
            continue
        best = _closest(theirs, ours, field)
        if best >= rule.close:
            if not disagree & rule.unless:
                refunded = disagree & (rule.fields | rule.refunds)
                points += rule.close_points - sum(WEIGHTS[f][1] for f in refunded)
        elif best < rule.far and rule.far_if <= agree:
            if not (rule.far_unless and rule.far_unless <= agree):
                points += rule.far_points
    return points


RARE = 100
"""A surname at most this many persons of the register carry is rare."""
RARE_POINTS = 2
"""What a rare surname in common adds away from the address. Someone else of one
surname, initial and birth date is found elsewhere in a large register about as often
as the surname is common: among the hundred bearers of a rare surname hardly ever,
among the eight thousand Jansens of a million persons one notice in forty. At the
address the others are relatives, who share the surname however rare it is."""
FEW = 1_000
"""A surname at most this many persons carry: away from the address, with surname,
initial and birth date agreeing, one initial where the register has two given names
costs nothing. The charge (``SHORT``) is there for another person of that initial;
here that would be someone elsewhere of the same surname, initial and birth date,
found for one notice in three hundred or fewer. In three generated registers of a
million persons the charge there sent 22 residents who had moved to review and kept
out no look-alike; taken back for every surname, it let in three, of surnames 3,200 to
4,150 persons carry."""


def rare_points(
    agree: frozenset[str],
    disagree: frozenset[str],
    theirs: Mapping[str, list[bytes]],
    ours: Mapping[str, list[bytes]],
    bearers: Mapping[bytes, int],
) -> int:
    """What a surname in common that few persons carry adds where surname and initial
    agree and the address does not (``bearers``: how many carry each of the notice's
    surname encodings): ``RARE_POINTS`` for at most ``RARE`` persons, and for at most
    ``FEW`` with the birth date agreeing, the charge for one initial (``SHORT``) back."""
    if not {"name", "initial"} <= agree or "postcode" in agree:
        return 0
    shared = set(theirs.get("naam", ())) & set(ours.get("naam", ()))
    if not shared:
        return 0
    carried = max(bearers.get(encoding, FEW + 1) for encoding in shared)
    points = RARE_POINTS if carried <= RARE else 0
    if carried <= FEW and "birth" in agree and "short" in disagree:
        points -= SHORT
    return points


_FALLBACK = frozenset({"init_geb"})
"""Types looked up only for a notice whose other tokens find nobody, and whose
candidates count only where the surnames' encodings are nearly the same (``NEARLY``):
a register of a million persons holds one or two others of any initial and birth date,
and among so many some surname comes close by chance."""
NEARLY = 0.90
"""The surname similarity a candidate found by ``_FALLBACK`` needs: about one unrelated
pair of Dutch surnames in ten thousand reaches it, and a fifth of the surnames one
letter off."""
NEARLY_GIVEN = 0.85
"""Or this much, with a given name in common (``FUZZY["voornaam"].close``): about one
unrelated pair in nine hundred reaches it and seven in ten one letter off, and few of
the others of that initial and birth date bear the same given name too. A close surname
(0.80) is not enough even then: four unrelated surnames in a thousand come that close,
and one of those others with the same given name is found often enough to be accepted."""


def _nearly(
    theirs: Mapping[str, list[bytes]] | None, ours: Mapping[str, list[bytes]] | None
) -> bool:
    """Whether a candidate found by ``_FALLBACK`` counts (``NEARLY``, ``NEARLY_GIVEN``)."""
    surname = _closest(theirs, ours, "naam")
    if surname >= NEARLY:
        return True
    given = _closest(theirs, ours, "voornaam")
    return surname >= NEARLY_GIVEN and given >= FUZZY["voornaam"].close


def _keyed(notices: Sequence[Mapping[str, Sequence[str]]]) -> list[dict[str, list[int]]]:
    """Each notice's tokens by type as the register stores them (``token_keys``), all
    converted in one pass."""
    kinds = [[kind for kind in values if kind in TYPE_NUMBERS] for values in notices]
    pairs = list(zip(notices, kinds, strict=True))
    tokens = [token for values, own in pairs for kind in own for token in values[kind]]
    keys = iter(token_keys(tokens))
    return [{kind: [next(keys) for _ in values[kind]] for kind in own} for values, own in pairs]


def _hits(
    values: Mapping[str, Sequence[int]],
    owners: Mapping[int, list[tuple[int, int]]],
    kinds: frozenset[str],
    *,
    exclude: bool = False,
) -> dict[int, set[str]]:
    """Per person, the types of ``kinds`` (or, with ``exclude``, of all other types)
    whose tokens the notice shares with them."""
    hits: dict[int, set[str]] = defaultdict(set)
    for kind, tokens in values.items():
        if (kind in kinds) == exclude:
            continue
        number = TYPE_NUMBERS[kind]
        for token in tokens:
            for owner_type, person_id in owners.get(token, ()):
                if owner_type == number:
                    hits[person_id].add(kind)
    return hits


_INITIALS = (("init_pc_hnr", "init2_pc_hnr"), ("naam_init_geb", "naam_init2_geb"))
"""Pairs of types alike but for one initial or two: a side that has the first and not
the second knows one initial only."""


@lru_cache(maxsize=1 << 16)
def _judged(
    hits: frozenset[str], carried: frozenset[str], mask: int
) -> tuple[int, frozenset[str], frozenset[str]]:
    # A batch repeats few combinations of shared, carried and held types: each is
    # judged once.
    has = _types(mask)
    more = any(two in carried and one in has and two not in has for one, two in _INITIALS)
    fewer = any(one in carried and two not in carried and two in has for one, two in _INITIALS)
    agree, disagree = judge(hits, carried & has, more_initials=more, fewer_initials=fewer)
    return weigh(agree, disagree), agree, disagree


@lru_cache(maxsize=1 << 12)
def _types(mask: int) -> frozenset[str]:
    return frozenset(kind for kind, bit in TYPE_BITS.items() if mask & bit)


class Matcher:
    """Matches notices' tokens against the register of their gemeente."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def match(
        self,
        gemeente: str,
        kid: str,
        notices: Sequence[Mapping[str, Sequence[str]]],
        fuzzy: Sequence[Mapping[str, list[bytes]]] | None = None,
    ) -> list[Match]:
        """One ``Match`` per notice; ``notices`` are their token values by type, all
        made with the linkage secret ``kid``, and ``fuzzy`` (if given, one per notice)
        their fuzzy encodings as ``keys.bloom.decode`` returns them, empty for a notice
        without."""
        with reading(self._engine) as conn:
            return self.match_in(conn, gemeente, kid, notices, fuzzy)

    def match_in(
        self,
        conn: Connection,
        gemeente: str,
        kid: str,
        notices: Sequence[Mapping[str, Sequence[str]]],
        fuzzy: Sequence[Mapping[str, list[bytes]]] | None = None,
    ) -> list[Match]:
        """``match`` on an open connection."""
        current = conn.execute(
            select(registers.c.kid, registers.c.version, registers.c.persons).where(
                registers.c.gemeente == gemeente
            )
        ).first()
        if current is None:
            return [Match("review", "no_register") for _ in notices]
        if current.kid != kid:
            return [Match("review", "kid_mismatch") for _ in notices]
        tables = register_tables(gemeente, current.version)
        keyed = _keyed(notices)
        wanted = {
            key
            for values in keyed
            for kind, keys in values.items()
            if kind not in _FALLBACK
            for key in keys
        }
        owners = _owners(conn, tables, wanted)
        found = [_hits(values, owners, _FALLBACK, exclude=True) for values in keyed]
        # The fallback types are looked up only for notices the others found nobody for.
        lonely = [i for i, hits in enumerate(found) if not hits]
        fallback = {key for i in lonely for kind in _FALLBACK for key in keyed[i].get(kind, ())}
        if fallback:
            owners.update(_owners(conn, tables, fallback - wanted))
            for i in lonely:
                found[i] = _hits(keyed[i], owners, _FALLBACK)
        persons = _persons(conn, tables, {p for hits in found for p in hits})
        shift = size_shift(current.persons)
        encodings = list(fuzzy) if fuzzy else [{}] * len(keyed)
        surnames = {e for theirs in encodings for e in theirs.get("naam", ())}
        bearers = _bearers(conn, tables, surnames)
        return [
            self._decide(values, hits, persons, shift=shift, fuzzy=theirs, bearers=bearers)
            for values, hits, theirs in zip(keyed, found, encodings, strict=True)
        ]

    @staticmethod
    def _decide(
        values: Mapping[str, Sequence[int]],
        hits: Mapping[int, set[str]],
        persons: Mapping[int, _Person],
        *,
        shift: int = 0,
        fuzzy: Mapping[str, list[bytes]] | None = None,
        bearers: Mapping[bytes, int] | None = None,
    ) -> Match:
        """The outcome for a notice whose tokens ``values`` are shared, per candidate,
        in the types ``hits``."""
        if not hits:
            return Match("not_resident", "no_candidate")
        carried = frozenset(kind for kind, tokens in values.items() if tokens)
        scores = []
        for person_id, kinds in hits.items():
            person = persons[person_id]
            ours = unpack(person.fuzzy) if fuzzy and person.fuzzy else None
            if kinds <= _FALLBACK and not _nearly(fuzzy, ours):
                continue
            points, agree, disagree = _judged(frozenset(kinds), carried, person.types)
            if fuzzy and ours:
                points += fuzzy_points(agree, disagree, fuzzy, ours)
                points += rare_points(agree, disagree, fuzzy, ours, bearers or {})
            scores.append((points, person_id))
        if not scores:
            return Match("not_resident", "no_candidate")
        ranked = sorted(scores, reverse=True)
        best, person_id = ranked[0]
        runner_up = ranked[1][0] if len(ranked) > 1 else None
        margin = best - runner_up if runner_up is not None else None
        scored = Match("review", "ambiguous", score=best, margin=margin, candidates=len(ranked))
        if best < REVIEW - shift:
            return replace(scored, outcome="not_resident", reason="below_review")
        if best < ACCEPT - shift:
            return replace(scored, reason="below_accept")
        if margin is not None and margin < MARGIN:
            return scored
        person = persons[person_id]
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


def _one_of(conn: Connection, column: ColumnElement[int], values: list[int]) -> Any:
    """``column IN values`` with the values as one parameter where the database can:
    SQLAlchemy's ``in_`` binds and names each value anew, which costs more than the
    look-up itself for thousands of tokens."""
    if conn.dialect.name == "sqlite":
        each = func.json_each(bindparam(None, json.dumps(values), type_=String)).table_valued(
            "value"
        )
        return column.in_(select(each.c.value))
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(BigInteger)))
    return column.in_(values)


def _owners(
    conn: Connection, tables: RegisterTables, tokens: set[int]
) -> dict[int, list[tuple[int, int]]]:
    """Per token: the type and person of every register token stored under its key."""
    found: dict[int, list[tuple[int, int]]] = defaultdict(list)
    ordered = sorted(tokens)
    columns = tables.tokens.c
    for start in range(0, len(ordered), CHUNK):
        rows = conn.execute(
            select(columns.token, columns.type, columns.person).where(
                _one_of(conn, columns.token, ordered[start : start + CHUNK])
            )
        )
        for token, kind, person in rows.all():
            found[token].append((kind, person))
    return found


def _bearers(conn: Connection, tables: RegisterTables, surnames: set[bytes]) -> dict[bytes, int]:
    """Per surname encoding: how many persons of the register carry it."""
    keyed = {surname_key(encoding): encoding for encoding in surnames}
    if not keyed:
        return {}
    columns = tables.surnames.c
    rows = conn.execute(
        select(columns.surname, columns.persons).where(
            _one_of(conn, columns.surname, sorted(keyed))
        )
    )
    return {keyed[key]: persons for key, persons in rows.all()}


def _persons(conn: Connection, tables: RegisterTables, ids: set[int]) -> dict[int, _Person]:
    found: dict[int, _Person] = {}
    ordered = sorted(ids)
    columns = tables.persons.c
    for start in range(0, len(ordered), CHUNK):
        rows = conn.execute(
            select(
                columns.id,
                columns.pseudonym,
                columns.household,
                columns.district,
                columns.status,
                columns.labels,
                columns.types,
                columns.fuzzy,
            ).where(_one_of(conn, columns.id, ordered[start : start + CHUNK]))
        )
        for row in rows.all():
            found[row.id] = _Person(*row[1:])
    return found
