"""Keyed balanced Bloom-filter encodings: the format, balance, and what similarity shows."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.bloom import (
    CARRIED,
    FIELDS,
    MAX_VALUES,
    BloomEncoder,
    decode,
    pack,
    similarity,
    unpack,
)
from keys.jose import b64d, b64e
from keys.tokens import LinkageSecret, PersonFields

FIXED = LinkageSecret(kid="lk-20261122-00000000", secret=bytes(range(32)))
OTHER = LinkageSecret(kid="lk-20261122-11111111", secret=bytes(range(1, 33)))
# A few secrets, so a similarity ordering is not an accident of one key.
SECRETS = [LinkageSecret(kid=f"lk-{i}", secret=bytes([i]) * 32) for i in range(1, 9)]

ENCODER = BloomEncoder(FIXED)
ENCODERS = [BloomEncoder(s) for s in SECRETS]

SAMPLE = {"naam": "jansen", "voornaam": "jan willem", "adres": "1012AB 12", "geb": "1980-03-07"}

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=30)
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)).map(date.isoformat)
addresses = st.builds(
    "{}{} {}".format,
    st.integers(1000, 9999),
    st.text(alphabet="ABCDEFGHJKLMNPRSTVWXZ", min_size=2, max_size=2),
    st.integers(1, 99999),
)
values = {"naam": names, "voornaam": names, "adres": addresses, "geb": dates}
field_values = st.sampled_from(sorted(FIELDS)).flatmap(lambda f: st.tuples(st.just(f), values[f]))


# --- a reference implementation, written from docs/fuzzy-encoding.md --------------------


def _hkdf(secret: bytes, info: bytes) -> bytes:
    # RFC 5869 with one block of output.
    prk = hmac.digest(b"signaalpoort/bloom/v1", secret, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def _reference_qgrams(field: str, value: str) -> set[str]:
    if field != "geb":
        padded = f"_{value}_"
        return {padded[i : i + 2] for i in range(len(padded) - 1)}
    year, month, day = value.split("-")
    digits = year + month + day
    swapped = "-".join(sorted((month, day)))
    return {f"y:{year}", f"m:{month}", f"d:{day}", f"dm:{swapped}"} | {
        f"p{i}:{digits[i]}" for i in range(8)
    }


def _reference_filter(secret: bytes, field: str, value: str) -> list[int]:
    bits, k = FIELDS[field].bits, FIELDS[field].hashes
    key = _hkdf(secret, b"bloom:" + field.encode())
    filter_ = [0] * bits
    for qgram in _reference_qgrams(field, value):
        digest = hmac.digest(key, qgram.encode(), "sha256")
        h1 = int.from_bytes(digest[0:8], "big")
        h2 = int.from_bytes(digest[8:16], "big") | 1
        for i in range(k):
            filter_[(h1 + i * h2) % bits] = 1
    return filter_


def _stream(key: bytes) -> Iterator[int]:
    counter = 0
    while True:
        block = hmac.digest(key, counter.to_bytes(8, "big"), "sha256")
        for i in range(0, 32, 8):
            yield int.from_bytes(block[i : i + 8], "big")
        counter += 1


def _reference_permutation(secret: bytes, field: str) -> list[int]:
    n = 2 * FIELDS[field].bits
    words = _stream(_hkdf(secret, b"bloom-perm:" + field.encode()))
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        bound = i + 1
        word = next(words)
        while word >= 2**64 - 2**64 % bound:
            word = next(words)
        j = word % bound
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _reference_encode(secret: bytes, field: str, value: str) -> bytes:
    filter_ = _reference_filter(secret, field, value)
    balanced = filter_ + [1 - b for b in filter_]
    perm = _reference_permutation(secret, field)
    out = [0] * len(balanced)
    for p, bit in enumerate(balanced):
        out[perm[p]] = bit
    number = sum(bit << p for p, bit in enumerate(out))
    return number.to_bytes(len(out) // 8, "big")


@settings(max_examples=60, deadline=None)
@given(field_values)
def test_encoding_follows_the_specification(field_value: tuple[str, str]) -> None:
    field, value = field_value
    assert ENCODER.encode(field, value) == _reference_encode(FIXED.secret, field, value)


def test_known_answer_encodings_for_a_fixed_secret() -> None:
    # Pinned, so that a change of the format (which breaks every stored encoding) shows.
    for field, value in SAMPLE.items():
        assert ENCODER.encode(field, value) == _reference_encode(FIXED.secret, field, value)
    assert ENCODER.encode_b64("voornaam", "jan willem") == (
        "dbGJDCoJoXWy78g8cLHusCGld8W4B1T679pELSEqT2YdJ6j8ezSxuj5rBf-iDpBKyNLWjmv6WAJ3vEsiOP1TlA"
    )
    assert ENCODER.encode_b64("geb", "1980-03-07") == (
        "C7lWyEQ1Mda2L3mG6be7Se2hED6t9KWvSCU2lcvs0jGMmxnEqrF-WyZf4HhTrP5mQ_zEA4zJSICsfS9mD2wMLA"
    )


def test_b64_form_is_unpadded_base64url_of_the_bytes() -> None:
    for field, value in SAMPLE.items():
        text = ENCODER.encode_b64(field, value)
        assert "=" not in text
        assert b64d(text) == ENCODER.encode(field, value)
        assert len(ENCODER.encode(field, value)) == FIELDS[field].size == FIELDS[field].bits // 4


# --- keys -------------------------------------------------------------------------------


def test_same_secret_gives_the_same_encoding_on_two_encoders() -> None:
    again = BloomEncoder(LinkageSecret(kid=FIXED.kid, secret=bytes(range(32))))
    for field, value in SAMPLE.items():
        assert again.encode(field, value) == ENCODER.encode(field, value)


def test_another_secret_gives_another_encoding() -> None:
    other = BloomEncoder(OTHER)
    for field, value in SAMPLE.items():
        assert other.encode(field, value) != ENCODER.encode(field, value)


def test_each_field_has_its_own_keys() -> None:
    # naam, adres and geb are all 2 x 256 bits, so only the keys can tell them apart.
    same = {ENCODER.encode(f, "1980-03-07") for f in FIELDS}
    assert len(same) == len(FIELDS)
    filters = {ENCODER._filter(f, "1980-03-07") for f in ("naam", "adres")}
    assert len(filters) == 2


def test_encoder_carries_the_kid_of_its_secret() -> None:
    assert ENCODER.kid == FIXED.kid


# --- balance ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(field_values)
def test_every_encoding_has_exactly_half_its_bits_set(field_value: tuple[str, str]) -> None:
    field, value = field_value
    encoded = ENCODER.encode(field, value)
    assert int.from_bytes(encoded, "big").bit_count() == FIELDS[field].bits
    assert len(encoded) * 8 == 2 * FIELDS[field].bits


def test_weight_does_not_grow_with_the_value() -> None:
    short = ENCODER._filter("naam", "li").bit_count()
    long = ENCODER._filter("naam", "vanderwaalswijkerbroek").bit_count()
    assert long > 2 * short  # the unbalanced filter gives the length away,
    weights = {int.from_bytes(ENCODER.encode("naam", v), "big").bit_count() for v in ("li", "x")}
    assert weights == {FIELDS["naam"].bits}  # the encoding does not


# --- similarity -------------------------------------------------------------------------


def _sims(field: str, one: str, other: str) -> list[float]:
    return [similarity(e.encode(field, one), e.encode(field, other)) for e in ENCODERS]


def test_identical_values_are_fully_similar() -> None:
    for field, value in SAMPLE.items():
        assert _sims(field, value, value) == [1.0] * len(ENCODERS)


@pytest.mark.parametrize(("one", "typo"), [("jansen", "janssen"), ("bakker", "bakkers")])
def test_surname_with_one_letter_more_scores_above_unrelated_surnames(one: str, typo: str) -> None:
    # One inserted letter changes at most 3 bigrams, so at most 3 x k = 45 of the 256
    # filter bits: the similarity is at least 1 - 45/256 = 0.82 whatever the key. Two
    # unrelated surnames (fill about 0.37 each) agree on about 1 - 2f + 2f^2 = 0.53 of
    # the bits, more when they share a bigram; 0.8 leaves room on both sides.
    typos = _sims("naam", one, typo)
    unrelated = _sims("naam", one, "visser")
    assert min(typos) >= 0.8
    assert max(unrelated) < 0.8
    assert all(t > u + 0.1 for t, u in zip(typos, unrelated, strict=True))


def test_surname_similarity_falls_as_more_bigrams_differ() -> None:
    # janssen adds one bigram (ss); janszen swaps one (se) for two (sz, ze).
    one = _sims("naam", "jansen", "janssen")
    two = _sims("naam", "jansen", "janszen")
    far = _sims("naam", "jansen", "visser")
    assert all(a > b > c for a, b, c in zip(one, two, far, strict=True))


@pytest.mark.parametrize(
    ("near", "why"),
    [
        ("1980-03-08", "one digit of the day"),
        ("1986-03-07", "one digit of the year"),
        ("1980-07-03", "day and month swapped"),
    ],
)
def test_near_birth_dates_score_above_an_unrelated_date(near: str, why: str) -> None:
    # A one-digit typo changes at most 3 of the 12 date tokens on each side; this swap
    # changes 4 (d, m, p5, p7). So at most 8 x k = 80 of the 256 filter bits differ and
    # the similarity is at least 1 - 80/256 > 0.68 whatever the key. The unrelated date
    # shares only p0 and p1, and comes out near the baseline of about 0.55.
    close = _sims("geb", "1980-03-07", near)
    unrelated = _sims("geb", "1980-03-07", "1955-11-22")
    assert min(close) > 0.68, why
    assert all(c > u for c, u in zip(close, unrelated, strict=True)), why


@settings(max_examples=50, deadline=None)
@given(field_values, st.data())
def test_similarity_is_symmetric(field_value: tuple[str, str], data: st.DataObject) -> None:
    field, value = field_value
    other = data.draw(values[field])
    a, b = ENCODER.encode(field, value), ENCODER.encode(field, other)
    assert similarity(a, b) == similarity(b, a)
    assert 0.0 <= similarity(a, b) <= 1.0


@settings(max_examples=50, deadline=None)
@given(field_values, st.data())
def test_similarity_is_one_minus_the_unbalanced_distance_over_l(
    field_value: tuple[str, str], data: st.DataObject
) -> None:
    field, value = field_value
    other = data.draw(values[field])
    bits = FIELDS[field].bits
    h = (ENCODER._filter(field, value) ^ ENCODER._filter(field, other)).bit_count()
    got = similarity(ENCODER.encode(field, value), ENCODER.encode(field, other))
    assert got == 1 - 2 * h / (2 * bits)


def test_similarity_refuses_encodings_of_different_lengths() -> None:
    naam = ENCODER.encode("naam", "jansen")
    with pytest.raises(ValueError):
        similarity(naam, naam[:-1])
    with pytest.raises(ValueError):
        similarity(b"", b"")


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["", "achternaam", "NAAM", "bsn"])
def test_unknown_field_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        ENCODER.encode(field, "jansen")


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_empty_value_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        ENCODER.encode(field, "")
    with pytest.raises(ValueError, match="empty"):
        ENCODER.encode_b64(field, "")


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_value_with_the_field_separator_is_refused(field: str) -> None:
    value = "1980-03-07\x1f" if field == "geb" else "jan\x1fsen"
    with pytest.raises(ValueError, match="separator"):
        ENCODER.encode(field, value)


@pytest.mark.parametrize(
    "value", ["1980-3-7", "19800307", "1980-03-07 ", "80-03-07", "1980/03/07", "198x-03-07"]
)
def test_birth_date_not_in_iso_form_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ENCODER.encode("geb", value)
    # Also once the halves of a good date have been seen.
    ENCODER.encode("geb", "1980-03-07")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ENCODER.encode("geb", value)


# --- a person's encodings, as notices and registers carry them ---------------------------

PERSON = PersonFields(
    cores=("jansen", "dijk", "jansen"),
    initial="j",
    initials2="jp",
    birth_date="1980-03-07",
    postcode="1012AB",
    huisnummer=12,
    bsn=None,
    given=("jan", "pieter"),
)


def test_a_person_carries_each_surname_the_address_the_birth_date_and_given_names() -> None:
    carried = ENCODER.person(PERSON)
    assert carried == {
        "naam": [ENCODER.encode_b64("naam", "jansen"), ENCODER.encode_b64("naam", "dijk")],
        "adres": [ENCODER.encode_b64("adres", "1012AB 12")],
        "geb": [ENCODER.encode_b64("geb", "1980-03-07")],
        "voornaam": [ENCODER.encode_b64("voornaam", n) for n in ("jan", "pieter")],
    }
    assert set(carried) == set(CARRIED)


def test_a_creditors_birth_date_is_carried_also_with_day_and_month_swapped() -> None:
    creditor = PersonFields.from_creditor(
        achternaam="Jansen", voorvoegsel="", voorletters="J.", geboortedatum="1980-03-07",
        postcode="", huisnummer="",
    )  # fmt: skip
    assert ENCODER.person(creditor)["geb"] == [
        ENCODER.encode_b64("geb", "1980-03-07"),
        ENCODER.encode_b64("geb", "1980-07-03"),
    ]
    for unswappable in ("1980-03-13", "1980-03-03"):
        fields = PersonFields.from_creditor(
            achternaam="Jansen", voorvoegsel="", voorletters="J.", geboortedatum=unswappable,
            postcode="", huisnummer="",
        )  # fmt: skip
        assert ENCODER.person(fields)["geb"] == [ENCODER.encode_b64("geb", unswappable)]


def test_a_field_not_known_is_left_out() -> None:
    moved = replace(PERSON, postcode=None, birth_date=None, given=())
    assert set(ENCODER.person(moved)) == {"naam"}
    assert "adres" not in ENCODER.person(replace(PERSON, huisnummer=None))


def test_decode_gives_the_bytes_of_each_encoding() -> None:
    carried = ENCODER.person(PERSON)
    decoded = decode(carried)
    assert decoded == {field: [b64d(v) for v in values] for field, values in carried.items()}
    assert unpack(pack(decoded)) == decoded
    assert unpack(pack({})) == {}
    assert unpack(pack({"geb": decoded["geb"]})) == {"geb": decoded["geb"]}


def test_a_packing_with_bytes_left_over_is_refused() -> None:
    decoded = decode(ENCODER.person(PERSON))
    with pytest.raises(ValueError, match="trailing"):
        unpack(pack(decoded) + b"\x00")


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"initialen": [ENCODER.encode_b64("voornaam", "jp")]},
        {"naam": []},
        {"naam": ENCODER.encode_b64("naam", "jansen")},
        {"naam": [ENCODER.encode_b64("naam", "jansen")] * (MAX_VALUES + 1)},
        {"geb": [ENCODER.encode_b64("naam", "jansen")[:-1]]},
        {"geb": [b64e(ENCODER.encode("geb", "1980-03-07")[:32])]},
        {"geb": [ENCODER.encode_b64("geb", "1980-03-07")[:-1] + "="]},
        {"geb": [12]},
    ],
    ids=[
        "not_an_object",
        "unknown_field",
        "empty_list",
        "not_a_list",
        "too_many",
        "one_character_short",
        "half_an_encoding",
        "padding",
        "not_a_string",
    ],
)
def test_decode_refuses_anything_but_carried_fields_of_their_size(bad: object) -> None:
    with pytest.raises(ValueError, match="fuzzy"):
        decode(bad)


def test_decode_names_the_field_whose_encoding_is_bad() -> None:
    carried = ENCODER.person(PERSON)
    with pytest.raises(ValueError, match="a geb encoding is not 64 bytes"):
        decode({**carried, "geb": [carried["geb"][0][:-1]]})
