"""The matcher: candidates from shared tokens, a score per candidate, accept with a margin.

The register is made the real way (the municipality's tokeniser over a small BRP
extract) and loaded into the store; the notices' tokens are made the creditor's way.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, insert, update
from sqlalchemy.schema import CreateTable

from adapters.register import (
    BRP_COLUMNS,
    PseudonymKey,
    label_records,
    read_brp,
    read_labels,
    tokenise,
    write_labels,
    write_register,
)
from gateway.clock import FixedClock
from gateway.matching import (
    ACCEPT,
    FEW,
    FUZZY,
    MARGIN,
    MAX_SHIFT,
    RARE,
    RARE_POINTS,
    REVIEW,
    SHORT,
    WEIGHTS,
    Label,
    Matcher,
    fuzzy_points,
    rare_points,
    score,
    size_shift,
)
from gateway.register import TYPE_NUMBERS, load_register, token_keys
from gateway.service import Gateway
from gateway.store.auditlog import AuditLog
from gateway.store.schema import register_tables, registers
from keys.bloom import BloomEncoder, decode
from keys.tokens import TOKEN_FIELDS, TOKEN_TYPES, LinkageSecret, PersonFields, Tokeniser

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
GEMEENTE = "0363"
AMSTERDAM = "00000001002564440000"
ZUID = "00000001002564440002"
ALL = list(TOKEN_TYPES)
# Notice and register person with one initial each and no BSN on the notice.
ONE = [t for t in TOKEN_TYPES if t not in ("bsn", "init2_pc_hnr", "naam_init2_geb")]
TWO = [t for t in TOKEN_TYPES if t != "bsn"]
NO_BIRTH = [t for t in ONE if "birth" not in TOKEN_FIELDS[t]]
ADDRESS = ["naam_pc_hnr", "fon_pc_hnr", "init_pc_hnr"]
EVERYTHING = ("name", "initial", "initials2", "birth", "postcode", "huisnummer")


def shared(*agreeing: str, among: list[str] = ONE) -> list[str]:
    """The types of ``among`` a notice shares with a candidate agreeing on ``agreeing``."""
    fields = {*agreeing, "sound"} if "name" in agreeing else set(agreeing)
    return [t for t in among if set(TOKEN_FIELDS[t]) <= fields]


# -- the score ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "hits", "mutual", "verdict"),
    [
        ("everything agrees", shared(*EVERYTHING), ONE, "accept"),
        ("no birth date on the notice", ADDRESS, NO_BIRTH, "accept"),
        ("moved house", shared("name", "initial", "birth"), ONE, "accept"),
        ("surname typo", shared("initial", "birth", "postcode", "huisnummer"), ONE, "accept"),
        ("house number wrong", shared("name", "initial", "birth", "postcode"), ONE, "accept"),
        ("the BSN alone", ["bsn"], ["bsn"], "accept"),
        ("names swapped, right address and birth", shared("birth", "postcode", "huisnummer"),
         ONE, "accept"),
        ("same name and address, other birth date", ADDRESS, ONE, "review"),
        ("surname and postcode wrong", shared("initial", "birth", "huisnummer"), ONE, "review"),
        ("same surname and birth date elsewhere, other initial", shared("name", "birth"),
         ONE, "review"),
        ("relative: other initial and birth date", shared("name", "postcode", "huisnummer"),
         ONE, "none"),
        ("only the initial and address", ["init_pc_hnr"], ONE, "none"),
    ],
)  # fmt: skip
def test_the_score_weighs_what_agrees_against_what_differs(
    case: str, hits: list[str], mutual: list[str], verdict: str
) -> None:
    value = score(hits, mutual)
    band = "accept" if value >= ACCEPT else "review" if value >= REVIEW else "none"
    assert band == verdict, f"{case}: {value}"


def test_a_differing_birth_date_costs_more_than_an_unknown_one() -> None:
    assert score(ADDRESS, ONE) < score(ADDRESS, NO_BIRTH)


def test_a_moved_address_counts_as_the_postcode_differing() -> None:
    moved = shared("name", "initial", "birth")
    # pc_geb not shared: the postcode differs; init_geb_hnr not shared: the number too.
    assert score(moved, ONE) == sum(WEIGHTS[f][0] for f in ("name", "initial", "birth")) + (
        WEIGHTS["postcode"][1] + WEIGHTS["huisnummer"][1]
    )
    # Without the types that single the postcode out, the address as a whole differs.
    older = [t for t in ONE if t not in ("pc_geb", "init_geb_hnr")]
    assert score(moved, older) == score(moved, ONE) - WEIGHTS["huisnummer"][1]


def test_a_differing_second_initial_sends_a_notice_without_birth_date_to_review() -> None:
    two = [*ADDRESS, "init2_pc_hnr"]
    assert score(two, two) >= ACCEPT
    assert REVIEW <= score(ADDRESS, two) < ACCEPT
    # Two initials on the notice, one given name in the register: as differing.
    assert score(ADDRESS, ADDRESS, more_initials=True) == score(ADDRESS, two)


def test_one_initial_where_the_register_has_two_keeps_household_evidence_from_accepting() -> None:
    assert score(ADDRESS, NO_BIRTH) >= ACCEPT
    assert REVIEW <= score(ADDRESS, NO_BIRTH, fewer_initials=True) < ACCEPT
    # A look-alike elsewhere: surname, initial and birth date, another address; whether
    # the surname is common enough for one is up to ``rare_points``.
    moved = shared("name", "initial", "birth")
    assert score(moved, ONE) >= ACCEPT > score(moved, ONE, fewer_initials=True)
    # With birth date and address agreeing, one initial is no reason for doubt.
    everything = shared(*EVERYTHING)
    assert score(everything, ONE, fewer_initials=True) >= ACCEPT + MARGIN


def test_a_second_initial_sets_apart_look_alikes_with_one_birth_date() -> None:
    look_alike = shared("name", "initial", "birth", among=TWO)
    assert "naam_init2_geb" not in look_alike
    assert score(look_alike, TWO) < ACCEPT <= score([*look_alike, "naam_init2_geb"], TWO)


def test_the_bsn_disagreeing_counts_against_a_candidate() -> None:
    assert score(ONE, ALL) < score(ONE, ONE) < score(ALL, ALL)


@pytest.mark.parametrize(
    ("persons", "shift"),
    [(1, MAX_SHIFT), (5_000, 4), (20_000, 2), (50_000, 1), (70_000, 1), (100_000, 0),
     (1_000_000, 0)],
)  # fmt: skip
def test_a_smaller_register_needs_less_evidence(persons: int, shift: int) -> None:
    assert size_shift(persons) == shift


# -- the matcher against a loaded register ----------------------------------------------

PERSONS: dict[str, dict[str, str]] = {
    # A married woman known by her husband's name (naamgebruik P), and her husband.
    "anna": {
        "bsn": "111222333", "geslachtsnaam": "Vries", "voorvoegsel": "de",
        "voornamen": "Anna Maria", "naamgebruik": "P", "partner_geslachtsnaam": "Bakker",
        "geboortedatum": "1975-04-12", "postcode": "1053DX", "huisnummer": "12",
        "wijkcode": "K02", "huishouden_id": "H1",
    },
    "piet": {
        "bsn": "123456782", "geslachtsnaam": "Bakker", "voornamen": "Piet",
        "naamgebruik": "E", "geboortedatum": "1973-01-30", "postcode": "1053DX",
        "huisnummer": "12", "wijkcode": "K02", "huishouden_id": "H1",
    },
    # Father and son: same surname and first initial at one address.
    "jan": {
        "bsn": "100000009", "geslachtsnaam": "Jansen", "voornamen": "Jan Pieter",
        "naamgebruik": "E", "geboortedatum": "1960-06-01", "postcode": "1094HB",
        "huisnummer": "45", "huisletter": "A", "wijkcode": "M05", "huishouden_id": "H2",
    },
    "joost": {
        "bsn": "100000010", "geslachtsnaam": "Jansen", "voornamen": "Joost",
        "naamgebruik": "E", "geboortedatum": "1995-02-17", "postcode": "1094HB",
        "huisnummer": "45", "huisletter": "A", "wijkcode": "M05", "huishouden_id": "H2",
    },
    "smit": {
        "bsn": "100000022", "geslachtsnaam": "Smit", "voornamen": "Kees",
        "naamgebruik": "E", "geboortedatum": "1940-09-09", "postcode": "1021HS",
        "huisnummer": "7", "wijkcode": "N03", "huishouden_id": "H3",
        "datum_overlijden": "2026-09-14",
    },
    "jong": {
        "bsn": "100000034", "geslachtsnaam": "Jong", "voorvoegsel": "de",
        "voornamen": "Lotte", "naamgebruik": "E", "geboortedatum": "1988-12-01",
        "postcode": "1102AB", "huisnummer": "3", "wijkcode": "T03", "huishouden_id": "H4",
        "datum_vertrek": "2026-08-15",
    },
}  # fmt: skip


def brp(path: Path, persons: dict[str, dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=BRP_COLUMNS)
        writer.writeheader()
        for person in persons.values():
            writer.writerow(
                {
                    **dict.fromkeys(BRP_COLUMNS, ""),
                    "woonplaats": "Amsterdam",
                    "gemeentecode": GEMEENTE,
                    **person,
                }
            )
    return path


class Register:
    """A municipality's side: its secret, its pseudonym key, its register at the gateway."""

    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        # A fixed test secret: fuzzy similarities vary a little with the key.
        self.secret = LinkageSecret(kid="lk-20261122-test", secret=bytes(range(32)))
        self.tokeniser = Tokeniser(self.secret)
        self.encoder = BloomEncoder(self.secret)
        self.pseudonyms = PseudonymKey.generate()
        self.gw = Gateway(
            settings=cast(Any, None),
            engine=engine,
            keyring=cast(Any, None),
            cipher=cast(Any, None),
            audit=AuditLog(),
            clock=FixedClock(NOW),
        )
        self.tmp = tmp_path

    def load(self, persons: dict[str, dict[str, str]], *, gemeente: str = GEMEENTE) -> None:
        rows = list(read_brp(brp(self.tmp / f"brp-{gemeente}.csv", persons)))
        register = self.tmp / f"register-{gemeente}.jsonl"
        write_register(
            register,
            tokenise(
                rows,
                tokeniser=self.tokeniser,
                encoder=self.encoder,
                pseudonyms=self.pseudonyms,
                gemeente=gemeente,
                now=NOW,
            ),
        )
        labels_csv = self.tmp / "labels.csv"
        labels_csv.write_text(f"bsn,label,team\n{PERSONS['piet']['bsn']},schuldhulp,{ZUID}\n")
        labels = self.tmp / "labels.jsonl"
        write_labels(
            labels,
            label_records(
                read_labels(labels_csv), pseudonyms=self.pseudonyms, gemeente=gemeente, now=NOW
            ),
        )
        load_register(self.gw, register, gemeente=gemeente, by=AMSTERDAM, labels=labels)

    def tokens(self, *, bsn: str = "", **fields: str) -> dict[str, list[str]]:
        return self.tokeniser.tokens(self.fields(bsn=bsn, **fields), include_bsn=bool(bsn))

    def fuzzy(self, **fields: str) -> dict[str, list[bytes]]:
        return decode(self.encoder.person(self.fields(**fields)))

    def fields(self, *, bsn: str = "", **fields: str) -> PersonFields:
        return PersonFields.from_creditor(
            achternaam=fields.get("achternaam", ""),
            voorvoegsel=fields.get("voorvoegsel", ""),
            voorletters=fields.get("voorletters", ""),
            geboortedatum=fields.get("geboortedatum", ""),
            postcode=fields.get("postcode", ""),
            huisnummer=fields.get("huisnummer", ""),
            bsn=bsn,
            voornamen=fields.get("voornamen", ""),
        )

    def person(self, name: str) -> str:
        return self.pseudonyms.person(PERSONS[name]["bsn"])

    def match(
        self,
        *notices: dict[str, list[str]],
        kid: str | None = None,
        fuzzy: list[dict[str, list[bytes]]] | None = None,
    ) -> list[Any]:
        return Matcher(self.gw.engine).match(GEMEENTE, kid or self.secret.kid, list(notices), fuzzy)


@pytest.fixture
def register(engine: Engine, tmp_path: Path) -> Iterator[Register]:
    municipality = Register(engine, tmp_path)
    municipality.load(PERSONS)
    yield municipality


ANNA = {
    "achternaam": "Bakker", "voorletters": "A.M.", "geboortedatum": "1975-04-12",
    "postcode": "1053 dx", "huisnummer": "12",
}  # fmt: skip


def test_a_resident_known_by_her_partners_name_is_matched_with_her_pseudonyms(
    register: Register,
) -> None:
    [found] = register.match(register.tokens(**ANNA))
    assert (found.outcome, found.reason) == ("matched", "accepted")
    assert found.person == register.person("anna")
    assert found.household == register.pseudonyms.household("H1")
    assert found.district == "K02"
    assert found.labels == ()
    # Her husband shares the name and the address, not the initial or the birth date.
    assert found.candidates == 2 and found.margin is not None and found.margin >= MARGIN


def test_the_labels_come_with_the_matched_person(register: Register) -> None:
    [found] = register.match(
        register.tokens(
            achternaam="Bakker",
            voorletters="P.",
            geboortedatum="1973-01-30",
            postcode="1053DX",
            huisnummer="12",
        )
    )
    assert found.person == register.person("piet")
    assert found.labels == (Label("schuldhulp", ZUID),)


def test_father_and_son_of_one_initial_without_a_birth_date_go_to_review(
    register: Register,
) -> None:
    jansen = {"achternaam": "Jansen", "voorletters": "J.", "postcode": "1094HB", "huisnummer": "45"}
    [found] = register.match(register.tokens(**jansen))
    assert (found.outcome, found.reason) == ("review", "ambiguous")
    assert found.person is None and found.margin is not None and found.margin < MARGIN
    [son] = register.match(register.tokens(**jansen, geboortedatum="1995-02-17"))
    assert (son.outcome, son.person) == ("matched", register.person("joost"))


def test_a_second_initial_tells_father_and_son_apart_without_a_birth_date(
    register: Register,
) -> None:
    jansen = {"achternaam": "Jansen", "postcode": "1094HB", "huisnummer": "45"}
    [father] = register.match(register.tokens(**jansen, voorletters="J.P."))
    assert (father.outcome, father.person) == ("matched", register.person("jan"))
    # A third J. Jansen living there, not registered: neither J.P. nor plain Joost.
    [other] = register.match(register.tokens(**jansen, voorletters="J.M."))
    assert other.outcome == "review" and other.person is None


def test_surname_and_house_number_written_wrongly_still_find_the_person(
    register: Register,
) -> None:
    # Only postcode and birth date are left in common (``pc_geb``).
    [found] = register.match(
        register.tokens(**{**ANNA, "achternaam": "Mulder", "huisnummer": "21"})
    )
    assert (found.outcome, found.person) == ("matched", register.person("anna"))


def test_given_name_and_surname_swapped_still_find_the_person(register: Register) -> None:
    # Piet Bakker written as "B. Piet", at an address the register does not know.
    swapped = {"achternaam": "Piet", "voorletters": "B.", "geboortedatum": "1973-01-30"}
    [found] = register.match(register.tokens(**swapped, postcode="1011AB", huisnummer="1"))
    assert (found.outcome, found.person) == ("matched", register.person("piet"))


def test_a_small_register_accepts_what_a_large_one_sends_to_review(register: Register) -> None:
    # Anna's initials, birth date and house number; surname and postcode written wrongly.
    garbled = {**ANNA, "achternaam": "Mulder", "postcode": "1011AB"}
    [small] = register.match(register.tokens(**garbled))
    assert (small.outcome, small.person) == ("matched", register.person("anna"))
    assert small.score is not None and small.score < ACCEPT
    with register.gw.engine.begin() as conn:  # the same register, counted as a city's
        conn.execute(update(registers).values(persons=100_000))
    [large] = register.match(register.tokens(**garbled))
    assert (large.outcome, large.person, large.score) == ("review", None, small.score)


def test_someone_not_in_the_register_is_not_resident(register: Register) -> None:
    stranger = {"achternaam": "Mulder", "voorletters": "P.", "geboortedatum": "1981-10-10"}
    [found] = register.match(register.tokens(**stranger, postcode="1091GH", huisnummer="3"))
    assert (found.outcome, found.reason, found.candidates) == ("not_resident", "no_candidate", 0)


def test_a_relative_living_at_a_residents_address_is_not_taken_for_the_resident(
    register: Register,
) -> None:
    sister = {**ANNA, "voorletters": "E.", "geboortedatum": "1980-01-01"}
    [found] = register.match(register.tokens(**sister))
    assert found.outcome == "not_resident" and found.person is None


def test_deceased_and_moved_out_persons_close_with_their_status(register: Register) -> None:
    smit = {"achternaam": "Smit", "voorletters": "K.", "geboortedatum": "1940-09-09"}
    jong = {"achternaam": "Jong", "voorvoegsel": "de", "voorletters": "L."}
    found = register.match(
        register.tokens(**smit, postcode="1021HS", huisnummer="7"),
        register.tokens(**jong, geboortedatum="1988-12-01", postcode="1102AB", huisnummer="3"),
    )
    assert [(m.outcome, m.person) for m in found] == [
        ("deceased", register.person("smit")),
        ("moved_out", register.person("jong")),
    ]


def test_a_valid_bsn_finds_the_person_even_at_another_address(register: Register) -> None:
    moved = {**ANNA, "postcode": "1011AB", "huisnummer": "1", "voorletters": "A."}
    [found] = register.match(register.tokens(**moved, bsn=PERSONS["anna"]["bsn"]))
    assert (found.outcome, found.person) == ("matched", register.person("anna"))


def test_a_differing_bsn_outweighs_name_initials_and_address(register: Register) -> None:
    # Anna's name, initials and address, but another person's BSN and no birth date.
    other = {k: v for k, v in ANNA.items() if k != "geboortedatum"}
    [found] = register.match(register.tokens(**other, bsn="100000046"))
    assert found.outcome == "review" and found.person is None


def test_tokens_of_another_linkage_secret_go_to_review(register: Register) -> None:
    [found] = register.match(register.tokens(**ANNA), kid="lk-20250101-00000000")
    assert (found.outcome, found.reason) == ("review", "kid_mismatch")


def test_a_gemeente_without_a_register_sends_every_notice_to_review(
    register: Register,
) -> None:
    found = Matcher(register.gw.engine).match("0599", register.secret.kid, [{}])
    assert [(m.outcome, m.reason) for m in found] == [("review", "no_register")]


def test_another_gemeentes_register_is_never_searched(engine: Engine, tmp_path: Path) -> None:
    municipality = Register(engine, tmp_path)
    municipality.load({"anna": {**PERSONS["anna"], "gemeentecode": "0599"}}, gemeente="0599")
    municipality.load({"piet": PERSONS["piet"]})
    [found] = municipality.match(municipality.tokens(**ANNA))
    assert found.outcome == "not_resident"
    assert found.person != municipality.person("anna")


def test_a_register_version_being_loaded_is_not_searched(register: Register) -> None:
    notice = register.tokens(**ANNA)
    impostor = "p-" + "I" * 22
    tables = register_tables(GEMEENTE, 2)
    with register.gw.engine.begin() as conn:  # the next version, half loaded
        conn.execute(CreateTable(tables.persons))
        conn.execute(CreateTable(tables.tokens))
        conn.execute(
            insert(tables.persons).values(
                id=1,
                pseudonym=impostor,
                household="",
                district="",
                status="resident",
                labels="[]",
                types=0,
            )
        )
        conn.execute(
            insert(tables.tokens),
            [
                {"token": key, "type": TYPE_NUMBERS[kind], "person": 1}
                for kind, tokens in notice.items() for key in token_keys(tokens)
            ],
        )  # fmt: skip
    [found] = register.match(notice)
    assert found.person == register.person("anna") and found.candidates == 2


# -- fuzzy encodings --------------------------------------------------------------------

ENCODER = BloomEncoder(LinkageSecret(kid="lk-test", secret=bytes(32)))


def _encoded(field: str, *values: str) -> dict[str, list[bytes]]:
    return {field: [ENCODER.encode(field, value) for value in values]}


def test_a_surname_one_letter_off_counts_as_agreeing_in_place_of_differing() -> None:
    agree, disagree = frozenset({"initial", "birth"}), frozenset({"name", "postcode"})
    close = fuzzy_points(agree, disagree, _encoded("naam", "jamsen"), _encoded("naam", "jansen"))
    assert close == FUZZY["naam"].close_points - WEIGHTS["name"][1]
    # Any of the register's surnames may be the close one.
    assert (
        fuzzy_points(
            agree, disagree, _encoded("naam", "jamsen"), _encoded("naam", "vries", "jansen")
        )
        == close
    )


def test_a_clearly_other_surname_counts_against_a_candidate_away_from_the_address() -> None:
    other = _encoded("naam", "pietersen"), _encoded("naam", "jansen")
    away = fuzzy_points(frozenset({"initial", "birth"}), frozenset({"name"}), *other)
    assert away == FUZZY["naam"].far_points < 0
    # At the address the surname may be one in use, or swapped with the given name.
    there = frozenset({"birth", "postcode", "huisnummer"})
    assert fuzzy_points(there, frozenset({"name"}), *other) == 0


def test_a_close_birth_date_counts_only_where_the_initial_does_not_differ() -> None:
    typo = _encoded("geb", "1995-02-18"), _encoded("geb", "1995-02-17")
    agree = frozenset({"name", "initial", "postcode", "huisnummer"})
    assert fuzzy_points(agree, frozenset({"birth"}), *typo) == (
        FUZZY["geb"].close_points - WEIGHTS["birth"][1]
    )
    relative = frozenset({"name", "postcode", "huisnummer"})
    assert fuzzy_points(relative, frozenset({"birth", "initial"}), *typo) == 0


def test_a_given_name_in_common_adds_and_lifts_the_charge_for_one_initial() -> None:
    one_initial = frozenset({"name", "initial", "postcode", "huisnummer"}), frozenset({"short"})
    jan = _encoded("voornaam", "jan"), _encoded("voornaam", "jan", "pieter")
    assert fuzzy_points(*one_initial, *jan) == FUZZY["voornaam"].close_points - SHORT
    # The second given name may be the one the creditor knows.
    pieter = _encoded("voornaam", "pieter"), jan[1]
    assert fuzzy_points(*one_initial, *pieter) == FUZZY["voornaam"].close_points - SHORT
    # Not for someone whose second initial differs from the register's.
    other = frozenset({"name", "initial"}), frozenset({"initials2"})
    assert fuzzy_points(*other, *jan) == 0


def test_another_given_name_of_the_same_initial_counts_against_a_candidate() -> None:
    agree = frozenset({"name", "initial", "postcode", "huisnummer"})
    joost = _encoded("voornaam", "joost"), _encoded("voornaam", "jan", "pieter")
    assert fuzzy_points(agree, frozenset(), *joost) == FUZZY["voornaam"].far_points < 0
    # Where the initial differs already, that is what counts.
    assert fuzzy_points(agree - {"initial"}, frozenset({"initial"}), *joost) == 0


def test_a_rare_surname_in_common_adds_only_away_from_the_address() -> None:
    moved, none = frozenset({"name", "initial", "birth"}), frozenset[str]()
    notice, person = _encoded("naam", "wijboom"), _encoded("naam", "wijboom", "vries")
    [wijboom] = notice["naam"]
    assert rare_points(moved, none, notice, person, {wijboom: RARE}) == RARE_POINTS
    assert rare_points(moved, none, notice, person, {wijboom: RARE + 1}) == 0
    # At the address the others are relatives, who share the surname however rare.
    at_home = moved | {"postcode", "huisnummer"}
    assert rare_points(at_home, none, notice, person, {wijboom: 1}) == 0
    # Surname and birth date alone are not enough, nor a surname the person lacks.
    assert rare_points(moved - {"initial"}, none, notice, person, {wijboom: 1}) == 0
    assert rare_points(moved, none, notice, _encoded("naam", "vries"), {wijboom: 1}) == 0


def test_a_surname_few_carry_takes_back_the_charge_for_one_initial_with_the_birth_date() -> None:
    short = frozenset({"short"})
    notice, person = _encoded("naam", "wijboom"), _encoded("naam", "wijboom")
    [wijboom] = notice["naam"]
    moved = frozenset({"name", "initial", "birth"})
    assert rare_points(moved, short, notice, person, {wijboom: FEW}) == -SHORT
    assert rare_points(moved, short, notice, person, {wijboom: RARE}) == RARE_POINTS - SHORT
    # A common surname: someone else of that surname, initial and birth date is found.
    assert rare_points(moved, short, notice, person, {wijboom: FEW + 1}) == 0
    # Without the birth date the other person of that initial may be anyone.
    assert rare_points(moved - {"birth"}, short, notice, person, {wijboom: 1}) == RARE_POINTS
    # At the address a relative of that initial shares the surname however rare.
    at_home = moved | {"postcode", "huisnummer"}
    assert rare_points(at_home, short, notice, person, {wijboom: 1}) == 0


def test_fields_the_tokens_show_to_agree_or_one_side_lacks_add_nothing() -> None:
    same = _encoded("naam", "jansen")
    assert fuzzy_points(frozenset({"name"}), frozenset(), same, _encoded("naam", "bakker")) == 0
    assert fuzzy_points(frozenset(), frozenset({"name"}), same, {}) == 0


JOOST_MOVED_AND_MISSPELT = {
    "achternaam": "Jansens", "voorletters": "J.", "geboortedatum": "1995-02-17",
    "postcode": "1011AA", "huisnummer": "3",
}  # fmt: skip


def test_a_misspelt_resident_who_moved_is_found_by_initial_and_birth_date(
    register: Register,
) -> None:
    notice = JOOST_MOVED_AND_MISSPELT
    [found] = register.match(register.tokens(**notice), fuzzy=[register.fuzzy(**notice)])
    assert (found.outcome, found.person) == ("matched", register.person("joost"))
    # Without fuzzy encodings initial and birth date alone make no candidate.
    [plain] = register.match(register.tokens(**notice))
    assert (plain.outcome, plain.reason) == ("not_resident", "no_candidate")


def test_a_surname_less_close_makes_a_candidate_only_with_the_given_name_in_common(
    register: Register,
) -> None:
    notice = {**JOOST_MOVED_AND_MISSPELT, "achternaam": "Jamsen"}  # between 0.85 and 0.90
    [found] = register.match(register.tokens(**notice), fuzzy=[register.fuzzy(**notice)])
    assert (found.outcome, found.reason) == ("not_resident", "no_candidate")
    named = {**notice, "voornamen": "Joost"}
    [found] = register.match(register.tokens(**named), fuzzy=[register.fuzzy(**named)])
    assert (found.outcome, found.person) == ("matched", register.person("joost"))


def test_someone_else_of_that_initial_and_birth_date_is_not_taken_for_the_resident(
    register: Register,
) -> None:
    notice = {**JOOST_MOVED_AND_MISSPELT, "achternaam": "Pietersen"}
    [found] = register.match(register.tokens(**notice), fuzzy=[register.fuzzy(**notice)])
    assert (found.outcome, found.reason) == ("not_resident", "no_candidate")


def test_a_given_name_tells_father_and_son_of_one_initial_apart_without_a_birth_date(
    register: Register,
) -> None:
    jansen = {"achternaam": "Jansen", "voorletters": "J.", "postcode": "1094HB", "huisnummer": "45"}
    for voornamen, name in (("Jan", "jan"), ("Joost", "joost")):
        notice = {**jansen, "voornamen": voornamen}
        [found] = register.match(register.tokens(**notice), fuzzy=[register.fuzzy(**notice)])
        assert (found.outcome, found.person) == ("matched", register.person(name))
        assert found.margin is not None and found.margin >= MARGIN


def test_a_birth_date_with_day_and_month_swapped_counts_as_the_birth_date(
    register: Register,
) -> None:
    swapped = {
        "achternaam": "Jansen", "voorletters": "J.P.", "geboortedatum": "1960-01-06",
        "postcode": "1094HB", "huisnummer": "45",
    }  # fmt: skip
    [plain] = register.match(register.tokens(**swapped))
    assert plain.outcome == "review"
    [found] = register.match(register.tokens(**swapped), fuzzy=[register.fuzzy(**swapped)])
    assert (found.outcome, found.person) == ("matched", register.person("jan"))


def test_initial_and_birth_date_are_looked_at_only_when_the_other_tokens_find_nobody(
    engine: Engine, tmp_path: Path
) -> None:
    municipality = Register(engine, tmp_path)
    jet = {
        "bsn": "100000046", "geslachtsnaam": "Bakker", "voornamen": "Jet",
        "naamgebruik": "E", "geboortedatum": "1990-01-01", "postcode": "1053DX",
        "huisnummer": "12", "wijkcode": "K02", "huishouden_id": "H1",
    }  # fmt: skip
    municipality.load({**PERSONS, "jet": jet})
    # Joost's initial and birth date and a surname close to his, at Jet's address: the
    # initial and address find Jet, so Joost is not looked for by initial and birth date.
    notice = {**JOOST_MOVED_AND_MISSPELT, "postcode": "1053DX", "huisnummer": "12"}
    [found] = municipality.match(
        municipality.tokens(**notice), fuzzy=[municipality.fuzzy(**notice)]
    )
    assert found.candidates == 1 and found.person != municipality.person("joost")
    elsewhere = municipality.match(
        municipality.tokens(**JOOST_MOVED_AND_MISSPELT),
        fuzzy=[municipality.fuzzy(**JOOST_MOVED_AND_MISSPELT)],
    )
    assert [m.person for m in elsewhere] == [municipality.person("joost")]
