"""Normalisation of names, addresses, dates and BSNs for match tokens."""

from __future__ import annotations

import re
import string
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import normalise
from keys.errors import FieldInvalid
from keys.normalise import (
    VOORVOEGSELS,
    birth_date,
    bsn,
    fold,
    given_names,
    huisnummer,
    initials,
    name_variants,
    optional_birth_date,
    phonetic,
    postcode,
    split_surname,
    surname_cores,
)

FOLDED = re.compile(r"([a-z0-9]+( [a-z0-9]+)*)?")


# --- fold -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jansen", "jansen"),
        ("  Van   der\tBerg \n", "van der berg"),
        ("Müller", "muller"),
        ("Çelik", "celik"),
        ("Śliwiński", "sliwinski"),
        ("Łukasz", "lukasz"),
        ("Strauß", "strauss"),
        ("Ærø", "aero"),
        ("Søren Økland", "soren okland"),
        ("Œuvre", "oeuvre"),
        ("İlkay Işık", "ilkay isik"),
        ("Đorđević", "dordevic"),
        ("O'Brien", "obrien"),
        ("O’Brien", "obrien"),
        ("O´Brien", "obrien"),
        ("'t Hart", "t hart"),
        ("Jansen-de Vries", "jansen de vries"),
        ("J.P.", "j p"),
        ("Berg, van der", "berg van der"),
        ("ĳsselmeer", "ijsselmeer"),
        ("", ""),
        ("-.,", ""),
    ],
)
def test_fold_reduces_names_to_lowercase_ascii_words(text: str, expected: str) -> None:
    assert fold(text) == expected


@given(st.text())
def test_fold_is_idempotent_and_ascii_only(text: str) -> None:
    folded = fold(text)
    assert folded.isascii()
    assert FOLDED.fullmatch(folded)
    assert fold(folded) == folded


@given(st.text(alphabet=string.ascii_letters + " -'", max_size=30))
def test_fold_ignores_case(text: str) -> None:
    assert fold(text.upper()) == fold(text.lower()) == fold(text)


# --- voorvoegsels and surname cores -------------------------------------------------------


def test_voorvoegsels_include_the_common_dutch_prefixes() -> None:
    for prefix in ("van", "de", "van der", "van den", "van 't", "'t", "ter", "in 't", "d'"):
        assert prefix in VOORVOEGSELS


def test_voorvoegsels_are_ordered_longest_match_first() -> None:
    words = [len(fold(p).split()) for p in VOORVOEGSELS]
    assert words == sorted(words, reverse=True)
    assert VOORVOEGSELS.index("van der") < VOORVOEGSELS.index("van")


@pytest.mark.parametrize(
    ("surname", "voorvoegsel", "expected"),
    [
        ("van der Berg", "", ("van der", "berg")),
        ("Van Den Berg", "", ("van den", "berg")),
        ("van 't Hof", "", ("van t", "hof")),
        ("'t Hart", "", ("t", "hart")),
        ("De Vries", "", ("de", "vries")),
        ("v.d. Berg", "", ("v d", "berg")),
        ("d'Ancona", "", ("d", "ancona")),
        ("Berg, van der", "", ("van der", "berg")),
        ("Berg", "van der", ("van der", "berg")),
        ("van der Berg", "van der", ("van der", "berg")),
        ("Jansen", "", ("", "jansen")),
        ("Müller", "", ("", "muller")),
        ("De", "", ("", "de")),
        # Whatever follows a prefix is a core, as when the register writes "van" + "Da".
        ("van Da", "", ("van", "da")),
        ("van der", "", ("van", "der")),
        ("", "", ("", "")),
    ],
)
def test_split_surname_separates_voorvoegsel_from_core(
    surname: str, voorvoegsel: str, expected: tuple[str, str]
) -> None:
    assert split_surname(surname, voorvoegsel) == expected


def test_double_name_yields_each_part_and_the_whole() -> None:
    assert surname_cores("Jansen-de Vries") == ["jansen", "vries", "jansen vries"]


def test_voorvoegsel_column_belongs_to_the_first_part_of_a_double_name() -> None:
    assert surname_cores("Dijk-Jansen", "van") == ["dijk", "jansen", "dijk jansen"]


def test_double_name_with_spaces_around_the_hyphen() -> None:
    assert surname_cores("Jansen - de Vries") == ["jansen", "vries", "jansen vries"]


def test_prefix_joined_by_hyphen_is_not_a_double_name() -> None:
    assert surname_cores("'s-Gravesande") == ["gravesande"]


def test_surname_cores_are_deduplicated_in_order() -> None:
    assert surname_cores("Smit-Smit") == ["smit", "smit smit"]
    assert surname_cores("") == []


# --- name variants (register side) -------------------------------------------------------


def _variants(naamgebruik: str, partner: str = "Jansen", partner_vv: str = "") -> list[str]:
    return name_variants(
        geslachtsnaam="Vries",
        voorvoegsel="de",
        naamgebruik=naamgebruik,
        partner_geslachtsnaam=partner,
        partner_voorvoegsel=partner_vv,
    )


def test_own_name_usage_yields_only_own_surname() -> None:
    assert _variants("E") == ["vries"]


@pytest.mark.parametrize("naamgebruik", ["P", "V", "N", "p", " v "])
def test_partner_name_usage_yields_both_surnames(naamgebruik: str) -> None:
    variants = _variants(naamgebruik)
    assert set(variants) == {"jansen", "vries", "jansen vries", "vries jansen"}


def test_partner_name_usage_lists_the_name_in_use_first() -> None:
    assert _variants("P")[0] == "jansen"
    assert _variants("V")[:3] == ["jansen", "vries", "jansen vries"]
    assert _variants("N")[:3] == ["vries", "jansen", "vries jansen"]


@pytest.mark.parametrize("naamgebruik", ["", "X", "?"])
def test_unknown_name_usage_behaves_as_own_name(naamgebruik: str) -> None:
    assert _variants(naamgebruik) == ["vries"]


def test_partner_name_usage_without_partner_behaves_as_own_name() -> None:
    assert _variants("P", partner="") == ["vries"]
    assert _variants("V", partner=" ", partner_vv="van") == ["vries"]


def test_partner_double_name_combines_with_own_name_as_a_whole() -> None:
    variants = _variants("N", partner="Dijk-Smit", partner_vv="van")
    assert variants == [
        "vries",
        "dijk",
        "smit",
        "dijk smit",
        "vries dijk smit",
        "dijk smit vries",
    ]


def test_creditor_writing_partner_own_meets_a_register_variant() -> None:
    creditor = surname_cores("Jansen-de Vries")
    assert "jansen vries" in creditor
    assert "jansen vries" in _variants("V")


# --- initials ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ("Jan Pieter", "jp"),
        ("J.P.", "jp"),
        ("J. P. K.", "jpk"),
        ("Jan-Willem", "jw"),
        ("Émile", "e"),
        ("", ""),
    ],
)
def test_initials_take_the_first_letter_of_each_name(names: str, expected: str) -> None:
    assert initials(names) == expected


@pytest.mark.parametrize(
    ("voornamen", "expected"),
    [
        ("Jan Pieter", ("jan", "pieter")),
        ("Jan-Willem Émile", ("jan willem", "emile")),
        ("J.P. Pieter", ("pieter",)),
        ("J. P.", ()),
        ("Jan jan", ("jan",)),
        ("  ", ()),
    ],
)
def test_given_names_are_folded_and_initials_left_out(
    voornamen: str, expected: tuple[str, ...]
) -> None:
    assert given_names(voornamen) == expected


# --- postcode, huisnummer, dates, BSN ------------------------------------------------------


@pytest.mark.parametrize("value", ["1234AB", "1234 ab", " 1234  Ab ", "1234ab"])
def test_postcode_is_written_as_four_digits_and_two_capitals(value: str) -> None:
    assert postcode(value) == "1234AB"


@pytest.mark.parametrize(
    "value", ["0123AB", "123AB", "12345AB", "1234A", "1234ABC", "", "１２３４AB"]
)
def test_postcode_refuses_what_is_not_a_dutch_postcode(value: str) -> None:
    with pytest.raises(FieldInvalid):
        postcode(value)


@given(st.from_regex(r"[1-9][0-9]{3} ?[A-Za-z]{2}", fullmatch=True))
def test_postcode_normalisation_is_idempotent(value: str) -> None:
    once = postcode(value)
    assert postcode(once) == once


@pytest.mark.parametrize(
    ("value", "expected"), [("1", 1), (" 12 ", 12), ("007", 7), (99999, 99999)]
)
def test_huisnummer_accepts_1_to_99999(value: str | int, expected: int) -> None:
    assert huisnummer(value) == expected


@pytest.mark.parametrize("value", ["0", 0, 100000, "100000", "12a", "", "-1", -1, True, "１２"])
def test_huisnummer_refuses_others(value: str | int) -> None:
    with pytest.raises(FieldInvalid):
        huisnummer(value)


@pytest.mark.parametrize("value", ["1980-01-31", "2024-02-29", " 1999-12-31 "])
def test_birth_date_accepts_real_iso_dates(value: str) -> None:
    assert birth_date(value) == value.strip()


@pytest.mark.parametrize(
    "value", ["2023-02-29", "1980-13-01", "1980-00-00", "19800131", "31-01-1980", "1980-1-31", ""]
)
def test_birth_date_refuses_what_is_not_a_real_iso_date(value: str) -> None:
    with pytest.raises(FieldInvalid):
        birth_date(value)


def test_optional_birth_date_is_none_when_empty() -> None:
    assert optional_birth_date("") is None
    assert optional_birth_date("  ") is None
    assert optional_birth_date("1980-01-31") == "1980-01-31"


def test_bsn_passing_the_elfproef_is_accepted() -> None:
    # 9*1 + 8*1 + 7*1 + 6*2 + 5*2 + 4*2 + 3*3 + 2*3 - 3 = 66, divisible by 11.
    assert bsn("111222333") == "111222333"


def test_bsn_failing_the_elfproef_is_refused() -> None:
    # 9*1 + 8*2 + 7*3 + 6*4 + 5*5 + 4*6 + 3*7 + 2*8 - 9 = 147 = 13 * 11 + 4.
    with pytest.raises(FieldInvalid):
        bsn("123456789")


@given(st.from_regex(r"[0-9]{8,9}", fullmatch=True))
def test_bsn_is_accepted_exactly_when_its_weighted_digits_pass_the_elfproef(value: str) -> None:
    digits = value.zfill(9)
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    total = sum(w * int(d) for w, d in zip(weights, digits, strict=True))
    if total % 11 == 0 and digits != "000000000":
        assert bsn(f" {value} ") == digits
    else:
        with pytest.raises(FieldInvalid):
            bsn(value)


def test_bsn_of_eight_digits_gets_a_leading_zero() -> None:
    assert bsn("10000008") == "010000008"


@pytest.mark.parametrize(
    "value", ["000000000", "00000000", "1112223330", "1234567", "11122233a", ""]
)
def test_bsn_refuses_zeros_and_wrong_lengths(value: str) -> None:
    with pytest.raises(FieldInvalid):
        bsn(value)


@pytest.mark.parametrize(
    ("function", "value"),
    [
        (postcode, "9999 XYZ"),
        (huisnummer, "123456"),
        (birth_date, "1977-02-30"),
        (bsn, "123456789"),
    ],
)
def test_errors_name_the_field_but_never_the_value(
    function: Callable[[str], object], value: str
) -> None:
    with pytest.raises(FieldInvalid) as caught:
        function(value)
    assert value not in str(caught.value)
    assert value not in caught.value.diagnostics()


# --- phonetic ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spellings",
    [
        ["Janssen", "Jansen"],
        ["Bijl", "Byl", "Beil"],
        ["Smit", "Smid", "Schmidt", "Smith"],
        ["Kuijpers", "Kuipers", "Kuypers"],
        ["Groot", "Grood"],
        ["Meijer", "Meyer", "Meier"],
        ["Hendriks", "Hendrix", "Hendrickx", "Hendricks"],
        ["Visser", "Visscher"],
        ["Bouwman", "Bouman", "Bauman"],
        ["Bakker", "Backer"],
        ["Zwart", "Swart"],
        ["Müller", "Muller"],
    ],
)
def test_phonetic_key_joins_spelling_variants(spellings: list[str]) -> None:
    keys = {phonetic(s) for s in spellings}
    assert len(keys) == 1, keys


@pytest.mark.parametrize(
    ("one", "other"),
    [("Jansen", "Peters"), ("Bakker", "Visser"), ("Smit", "Smits"), ("de Vries", "de Boer")],
)
def test_phonetic_key_keeps_different_names_apart(one: str, other: str) -> None:
    assert phonetic(split_surname(one)[1]) != phonetic(split_surname(other)[1])


@given(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=12))
def test_phonetic_key_ignores_a_doubled_s(name: str) -> None:
    single = name + "s" + name[::-1]
    doubled = name + "ss" + name[::-1]
    assert phonetic(single) == phonetic(doubled)


@given(st.text())
def test_phonetic_key_is_ascii_and_stable(text: str) -> None:
    key = phonetic(text)
    assert key.isascii()
    assert phonetic(text) == key


def test_public_functions_are_documented() -> None:
    for name in normalise.__all__:
        public = getattr(normalise, name)
        assert not callable(public) or public.__doc__
