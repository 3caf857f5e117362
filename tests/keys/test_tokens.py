"""Keyed match tokens: derivation, known answers, and creditor/register agreement."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.errors import FieldInvalid, SecretInvalid
from keys.jose import b64e
from keys.normalise import phonetic
from keys.tokens import (
    TOKEN_FIELDS,
    TOKEN_TYPES,
    HMACKey,
    LinkageSecret,
    PersonFields,
    Tokeniser,
    notice_tokens,
)

FIXED = LinkageSecret(kid="lk-20261122-00000000", secret=bytes(range(32)))
TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


def _register(**overrides: str) -> PersonFields:
    fields = {
        "geslachtsnaam": "Vries",
        "voorvoegsel": "de",
        "voornamen": "Anna Maria",
        "naamgebruik": "V",
        "partner_geslachtsnaam": "Jansen",
        "partner_voorvoegsel": "",
        "geboortedatum": "1970-01-01",
        "postcode": "1011 AB",
        "huisnummer": "5",
        "bsn": "111222333",
    }
    fields.update(overrides)
    return PersonFields.from_register(**fields)


def _creditor(**overrides: str) -> PersonFields:
    fields = {
        "achternaam": "Jansen-de Vries",
        "voorvoegsel": "",
        "voorletters": "A.M.",
        "geboortedatum": "1970-01-01",
        "postcode": "1011AB",
        "huisnummer": "5",
        "bsn": "",
    }
    fields.update(overrides)
    return PersonFields.from_creditor(**fields)


def _shared(one: dict[str, list[str]], other: dict[str, list[str]]) -> set[str]:
    return {t for t in one if set(one[t]) & set(other.get(t, []))}


# --- the linkage secret ------------------------------------------------------------------


def test_linkage_secret_repr_never_shows_the_secret() -> None:
    shown = repr(FIXED) + str(FIXED) + f"{FIXED}"
    assert "lk-20261122-00000000" in shown
    assert b64e(FIXED.secret) not in shown
    assert repr(FIXED.secret) not in shown


def test_linkage_secret_round_trips_through_a_dict() -> None:
    data = FIXED.to_dict()
    assert data == {"kid": FIXED.kid, "secret": b64e(bytes(range(32)))}
    assert "=" not in data["secret"]
    assert LinkageSecret.from_dict(data) == FIXED


def test_generated_secret_has_a_dated_kid_and_32_random_bytes() -> None:
    now = datetime(2026, 11, 22, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    one = LinkageSecret.generate(now=now)
    other = LinkageSecret.generate(now=now)
    assert re.fullmatch(r"lk-20261123-[0-9a-f]{8}", one.kid)
    assert len(one.secret) == 32
    assert one.secret != other.secret
    assert one.kid != other.kid


@pytest.mark.parametrize(
    "data",
    [
        {"kid": "lk-1", "secret": b64e(bytes(31))},
        {"kid": "lk-1", "secret": b64e(bytes(33))},
        {"kid": "lk-1", "secret": b64e(bytes(32)) + "="},
        {"kid": "lk-1", "secret": "not base64!"},
        {"kid": "", "secret": b64e(bytes(32))},
        {"kid": "lk 1", "secret": b64e(bytes(32))},
        {"kid": 1, "secret": b64e(bytes(32))},
        {"kid": "lk-1"},
        {"kid": "lk-1", "secret": b64e(bytes(32)), "extra": "x"},
    ],
)
def test_malformed_linkage_secret_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(SecretInvalid) as caught:
        LinkageSecret.from_dict(data)
    assert str(data.get("secret")) not in str(caught.value)


def test_linkage_secret_of_the_wrong_length_cannot_be_built() -> None:
    with pytest.raises(SecretInvalid):
        LinkageSecret(kid="lk-1", secret=bytes(16))


# --- the token derivation ------------------------------------------------------------------


def test_known_answer_tokens_for_a_fixed_secret() -> None:
    tokeniser = Tokeniser(FIXED)
    assert tokeniser.token("bsn", "111222333") == "i00gOlEj1hI3ARYtNNm-QA"
    assert tokeniser.token("naam_init_geb", "berg", "j", "1980-02-29") == "mLaJSKn1nVaE7Or2w1rP8g"
    assert tokeniser.token("pc_hnr_geb", "1234AB", "12", "1980-02-29") == "yBRZEGbImES_fZ4WjktX2Q"


def test_token_is_truncated_hmac_under_an_hkdf_derived_key() -> None:
    # RFC 5869 with one block of output, written out with the standard library so the
    # derivation is checked independently of the code under test.
    prk = hmac.digest(b"signaalpoort/match-tokens/v1", FIXED.secret, "sha256")
    key = hmac.digest(prk, b"token:naam_pc_hnr" + b"\x01", "sha256")
    mac = hmac.digest(key, b"berg\x1f1234AB\x1f12", hashlib.sha256)
    assert Tokeniser(FIXED).token("naam_pc_hnr", "berg", "1234AB", "12") == b64e(mac[:16])


@settings(max_examples=300)
@given(st.binary(max_size=160), st.binary(max_size=300))
def test_hmac_key_is_the_standard_library_hmac(key: bytes, message: bytes) -> None:
    assert HMACKey(key).digest(message) == hmac.new(key, message, hashlib.sha256).digest()


@pytest.mark.parametrize("key_size", [0, 1, 32, 63, 64, 65, 200])
@pytest.mark.parametrize("message_size", [0, 1, 55, 56, 63, 64, 65, 119, 128, 1000])
def test_hmac_key_is_the_standard_library_hmac_around_block_sizes(
    key_size: int, message_size: int
) -> None:
    # SHA-256 blocks are 64 bytes; a longer key is hashed first (RFC 2104), and a
    # message of 56 bytes or more no longer fits the padding in one block.
    key = bytes(range(key_size % 256)) * (key_size // 256) + bytes(range(key_size % 256))
    message = bytes((7 * i) % 256 for i in range(message_size))
    assert HMACKey(key).digest(message) == hmac.new(key, message, hashlib.sha256).digest()


def test_hmac_key_gives_the_same_digest_every_time() -> None:
    mac = HMACKey(bytes(range(32)))
    first = mac.digest(b"berg")
    mac.digest(b"something else" * 10)
    assert mac.digest(b"berg") == first == hmac.digest(bytes(range(32)), b"berg", "sha256")


def test_hmac_key_repr_never_shows_the_key() -> None:
    assert repr(HMACKey(b"secret key")) == "HMACKey(<redacted>)"


def test_each_token_type_has_its_own_key() -> None:
    tokeniser = Tokeniser(FIXED)
    tokens = {tokeniser.token(t, "same", "fields") for t in TOKEN_TYPES}
    assert len(tokens) == len(TOKEN_TYPES)


def test_unknown_token_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown token type"):
        Tokeniser(FIXED).token("naam", "berg")


def test_field_holding_the_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="separator"):
        Tokeniser(FIXED).token("naam_pc_hnr", "berg\x1f1234AB", "12")


def test_tokeniser_carries_the_kid_of_its_secret() -> None:
    assert Tokeniser(FIXED).kid == FIXED.kid


secrets_32 = st.binary(min_size=32, max_size=32)
fields = st.lists(st.text(alphabet="abcdefghij0123456789 ", max_size=12), min_size=1, max_size=3)


@given(secrets_32, fields)
def test_tokens_are_deterministic_for_the_same_secret(secret: bytes, values: list[str]) -> None:
    one = Tokeniser(LinkageSecret(kid="lk-a", secret=secret))
    other = Tokeniser(LinkageSecret(kid="lk-b", secret=secret))
    assert one.token("naam_init_geb", *values) == other.token("naam_init_geb", *values)
    assert TOKEN.fullmatch(one.token("naam_init_geb", *values))


@given(secrets_32, secrets_32, fields)
def test_tokens_differ_across_secrets(secret: bytes, another: bytes, values: list[str]) -> None:
    if secret == another:
        return
    one = Tokeniser(LinkageSecret(kid="lk-a", secret=secret))
    other = Tokeniser(LinkageSecret(kid="lk-a", secret=another))
    assert one.token("pc_hnr_geb", *values) != other.token("pc_hnr_geb", *values)


# --- person fields --------------------------------------------------------------------------


def test_creditor_fields_are_normalised() -> None:
    person = _creditor(bsn="10000008")
    assert person == PersonFields(
        cores=("jansen", "vries", "jansen vries"),
        initial="a",
        birth_date="1970-01-01",
        postcode="1011AB",
        huisnummer=5,
        bsn="010000008",
        initials2="am",
    )


def test_a_creditors_given_names_are_carried_and_give_the_initials_it_lacks() -> None:
    assert _creditor(voornamen="Anna Maria").given == ("anna", "maria")
    assert _creditor(voorletters="", voornamen="Anna Maria").initials2 == "am"
    # Where both are given, the initials are the creditor's own.
    assert _creditor(voorletters="B.", voornamen="Anna").initial == "b"


def test_a_creditors_birth_date_is_kept_also_with_day_and_month_swapped() -> None:
    assert _creditor(geboortedatum="1970-03-07").birth_swapped == "1970-07-03"
    assert _creditor(geboortedatum="1970-03-13").birth_swapped is None
    assert _creditor(geboortedatum="1970-03-03").birth_swapped is None
    assert _creditor(geboortedatum="").birth_swapped is None


def test_register_fields_carry_every_given_name() -> None:
    assert _register(voornamen="Anna Maria Jet").given == ("anna", "maria", "jet")
    assert _register(voornamen="").given == ()


def test_empty_creditor_fields_are_unknown() -> None:
    person = _creditor(achternaam="", voorletters="", geboortedatum="", postcode=" ", huisnummer="")
    assert person == PersonFields(
        cores=(), initial="", birth_date=None, postcode=None, huisnummer=None, bsn=None
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("postcode", "0123AB"),
        ("geboortedatum", "31-01-1970"),
        ("bsn", "123456789"),
        ("huisnummer", "5a"),
    ],
)
def test_invalid_creditor_field_is_refused(field: str, value: str) -> None:
    with pytest.raises(FieldInvalid):
        _creditor(**{field: value})


def test_register_fields_carry_every_name_variant() -> None:
    assert _register().cores == ("jansen", "vries", "jansen vries", "vries jansen")
    assert _register(naamgebruik="E").cores == ("vries",)


def test_partly_unknown_register_birth_date_counts_as_unknown() -> None:
    assert _register(geboortedatum="1960-00-00").birth_date is None
    assert _register(geboortedatum="1960-05-00").birth_date is None
    with pytest.raises(FieldInvalid):
        _register(geboortedatum="1960-02-30")


# --- tokens of a person ---------------------------------------------------------------------


def test_person_gets_one_name_token_per_surname_variant() -> None:
    tokens = Tokeniser(FIXED).tokens(_register())
    assert list(tokens) == [t for t in TOKEN_TYPES if t != "bsn"]
    # Four surname variants, and Anna de Vries as "V. Anna" besides.
    assert len(tokens["naam_init_geb"]) == 5
    assert len(tokens["naam_geb"]) == 4
    assert len(tokens["naam_init2_geb"]) == 4
    assert len(tokens["pc_hnr_geb"]) == 1
    assert len(tokens["init_pc_hnr"]) == 1
    for values in tokens.values():
        assert values == sorted(set(values))
        assert all(TOKEN.fullmatch(v) for v in values)


def test_tokens_of_a_person_are_the_tokens_of_its_fields() -> None:
    tokeniser = Tokeniser(FIXED)
    person = _creditor(achternaam="de Vries", bsn="111222333")
    tok = tokeniser.token
    assert tokeniser.tokens(person, include_bsn=True) == {
        "bsn": [tok("bsn", "111222333")],
        "naam_init_geb": [tok("naam_init_geb", "vries", "a", "1970-01-01")],
        "pc_hnr_geb": [tok("pc_hnr_geb", "1011AB", "5", "1970-01-01")],
        "naam_pc_hnr": [tok("naam_pc_hnr", "vries", "1011AB", "5")],
        "fon_init_geb": [tok("fon_init_geb", "fris", "a", "1970-01-01")],
        "fon_pc_hnr": [tok("fon_pc_hnr", "fris", "1011AB", "5")],
        "init_pc_hnr": [tok("init_pc_hnr", "a", "1011AB", "5")],
        "init2_pc_hnr": [tok("init2_pc_hnr", "am", "1011AB", "5")],
        "pc_geb": [tok("pc_geb", "1011AB", "1970-01-01")],
        "naam_geb": [tok("naam_geb", "vries", "1970-01-01")],
        "init_geb_hnr": [tok("init_geb_hnr", "a", "1970-01-01", "5")],
        "naam_init2_geb": [tok("naam_init2_geb", "vries", "am", "1970-01-01")],
        "init_geb": [tok("init_geb", "a", "1970-01-01")],
    }


def test_every_field_is_left_out_of_some_type_besides_the_bsn() -> None:
    # So that one field written wrongly still leaves a token in common.
    for field in ("name", "initial", "birth", "postcode", "huisnummer"):
        assert any(
            field not in fields and "sound" not in fields
            for kind, fields in TOKEN_FIELDS.items()
            if kind != "bsn"
        )


def test_the_register_adds_given_name_and_surname_swapped() -> None:
    tokeniser = Tokeniser(FIXED)
    register = _register(naamgebruik="E", voornamen="Danny", geslachtsnaam="Stephenson")
    assert register.swapped == (("danny", "s"),)
    swapped = _creditor(achternaam="Danny", voorvoegsel="", voorletters="S.", postcode="")
    assert _shared(tokeniser.tokens(swapped), tokeniser.tokens(register)) == {
        "naam_init_geb",
        "fon_init_geb",
    }
    # A creditor's record has no swapped variant of its own.
    assert _creditor().swapped == ()


def test_person_fields_holding_the_separator_are_refused() -> None:
    person = PersonFields(
        cores=("berg\x1f1011AB",),
        initial="",
        birth_date=None,
        postcode=None,
        huisnummer=None,
        bsn=None,
    )
    with pytest.raises(ValueError, match="separator"):
        Tokeniser(FIXED).tokens(person)


def test_bsn_token_only_when_asked_for() -> None:
    tokeniser = Tokeniser(FIXED)
    assert "bsn" not in tokeniser.tokens(_register())
    assert tokeniser.tokens(_register(), include_bsn=True)["bsn"] == [
        tokeniser.token("bsn", "111222333")
    ]
    assert "bsn" not in tokeniser.tokens(_register(bsn=""), include_bsn=True)


def test_types_with_a_missing_field_are_left_out() -> None:
    tokeniser = Tokeniser(FIXED)
    no_address = tokeniser.tokens(_creditor(postcode="", huisnummer=""))
    assert set(no_address) == {
        "naam_init_geb",
        "fon_init_geb",
        "naam_geb",
        "naam_init2_geb",
        "init_geb",
    }
    no_number = tokeniser.tokens(_creditor(huisnummer=""))
    assert "pc_geb" in no_number and "pc_hnr_geb" not in no_number
    no_birth_date = tokeniser.tokens(_creditor(geboortedatum=""))
    assert set(no_birth_date) == {"naam_pc_hnr", "fon_pc_hnr", "init_pc_hnr", "init2_pc_hnr"}
    one_initial = tokeniser.tokens(_creditor(voorletters="A."))
    assert "init2_pc_hnr" not in one_initial and "init_pc_hnr" in one_initial
    assert "naam_init2_geb" not in one_initial and "naam_init_geb" in one_initial
    nothing = tokeniser.tokens(_creditor(achternaam="", voorletters="", geboortedatum=""))
    assert set(nothing) == set()


def test_spelling_variants_share_a_phonetic_key_token() -> None:
    tokeniser = Tokeniser(FIXED)
    creditor = tokeniser.tokens(_creditor(achternaam="Janssen", voorletters="A"))
    register = tokeniser.tokens(_register(naamgebruik="P"))
    assert _shared(creditor, register) == {
        "pc_hnr_geb",
        "fon_init_geb",
        "fon_pc_hnr",
        "init_pc_hnr",
        "pc_geb",
        "init_geb_hnr",
        "init_geb",
    }


def _reference_tokens(
    secret: bytes, person: PersonFields, *, include_bsn: bool
) -> dict[str, list[str]]:
    """``Tokeniser.tokens`` as the module and ``TOKEN_FIELDS`` specify it, written plainly
    with the standard library's hmac, to hold the fast version to the same bytes."""
    prk = hmac.digest(b"signaalpoort/match-tokens/v1", secret, "sha256")
    cores = [c for c in dict.fromkeys(person.cores) if c]
    values = {
        "bsn": [person.bsn] if include_bsn and person.bsn else [],
        "name": cores,
        "sound": [k for k in dict.fromkeys(map(phonetic, cores)) if k],
        "initial": [person.initial] if person.initial else [],
        "initials2": [person.initials2] if person.initials2 else [],
        "birth": [person.birth_date] if person.birth_date else [],
        "postcode": [person.postcode] if person.postcode else [],
        "huisnummer": [str(person.huisnummer)] if person.huisnummer is not None else [],
    }
    out: dict[str, list[str]] = {}
    for type_, fields in TOKEN_FIELDS.items():
        lists = [values[f] for f in fields]
        if not all(lists):
            continue
        messages = {"\x1f".join(combo) for combo in itertools.product(*lists)}
        if type_ in ("naam_init_geb", "fon_init_geb"):
            for core, initial in person.swapped:
                first = core if fields[0] == "name" else phonetic(core)
                if first:
                    messages.add("\x1f".join((first, initial, *(values[f][0] for f in fields[2:]))))
        key = hmac.digest(prk, b"token:" + type_.encode() + b"\x01", "sha256")
        out[type_] = sorted({b64e(hmac.digest(key, m.encode(), "sha256")[:16]) for m in messages})
    return out


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", max_size=12)
people = st.builds(
    PersonFields,
    cores=st.lists(st.one_of(words, st.sampled_from(["jansen", "vries", "jansen vries"]))).map(
        tuple
    ),
    initial=st.sampled_from(["", "a", "j"]),
    birth_date=st.one_of(st.none(), st.sampled_from(["1970-01-01", "2001-12-31"])),
    postcode=st.one_of(st.none(), st.sampled_from(["1011AB", "9999ZZ"])),
    huisnummer=st.one_of(st.none(), st.integers(min_value=1, max_value=99999)),
    bsn=st.one_of(st.none(), st.sampled_from(["111222333", "010000008"])),
    initials2=st.sampled_from(["", "am", "jp"]),
    swapped=st.lists(st.tuples(words, st.sampled_from(["", "s", "v"])), max_size=2).map(tuple),
)


@settings(max_examples=300)
@given(people, st.booleans())
def test_tokens_are_the_hmac_of_the_specified_messages(
    person: PersonFields, include_bsn: bool
) -> None:
    tokens = Tokeniser(FIXED).tokens(person, include_bsn=include_bsn)
    expected = _reference_tokens(FIXED.secret, person, include_bsn=include_bsn)
    assert tokens == expected
    assert list(tokens) == list(expected)


def test_notice_tokens_carry_the_kid_and_the_values() -> None:
    tokeniser = Tokeniser(FIXED)
    person = _creditor(bsn="111222333")
    shape = notice_tokens(tokeniser, person, include_bsn=True)
    assert shape == {
        "kid": FIXED.kid,
        "values": tokeniser.tokens(person, include_bsn=True),
    }
    assert "bsn" in shape["values"]
    assert "bsn" not in notice_tokens(tokeniser, person)["values"]


# --- a creditor's view meets the register record --------------------------------------------

SURNAMES = [
    ("", "Jansen"),
    ("de", "Vries"),
    ("van der", "Berg"),
    ("van den", "Heuvel"),
    ("", "Bakker"),
    ("van", "Dijk"),
    ("", "Müller"),
    ("", "Çelik"),
    ("de", "Groot"),
    ("'t", "Hart"),
    ("", "Smit-Visser"),
    ("", "El Amrani"),
    ("", "Nguyen"),
]
generated = st.tuples(
    st.sampled_from(["", "van", "de", "ter"]),
    st.text(alphabet="abcdefghijklmnoprstuvwyz", min_size=2, max_size=10).map(str.title),
)
surnames = st.one_of(st.sampled_from(SURNAMES), generated)


def _strip_marks(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _add_marks(text: str) -> str:
    return text.translate(str.maketrans("aeiouc", "áëïöüç"))


@st.composite
def creditor_writes(draw: st.DrawFn, voorvoegsel: str, name: str) -> tuple[str, str]:
    """One way a creditor writes a surname: prefix in its column or inline, any case."""
    name = draw(st.sampled_from([name, _strip_marks(name), _add_marks(name)]))
    cases: list[Callable[[str], str]] = [str.strip, str.upper, str.lower]
    case = draw(st.sampled_from(cases))
    if voorvoegsel and draw(st.booleans()):
        return "", case(f"{voorvoegsel} {name}")
    return case(voorvoegsel), case(name)


@st.composite
def person_and_view(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, str]]:
    own_vv, own = draw(surnames)
    partner_vv, partner = draw(surnames)
    naamgebruik = draw(st.sampled_from("EPVN"))
    register = {
        "geslachtsnaam": own,
        "voorvoegsel": own_vv,
        "voornamen": draw(st.sampled_from(["Anna Maria", "Jan-Willem", "Émile", "Zoë"])),
        "naamgebruik": naamgebruik,
        "partner_geslachtsnaam": partner,
        "partner_voorvoegsel": partner_vv,
        "geboortedatum": "1970-01-31",
        "postcode": "1011AB",
        "huisnummer": "5",
        "bsn": "111222333",
    }
    known = ["own"] if naamgebruik == "E" else ["own", "partner", "partner-own", "own-partner"]
    form = draw(st.sampled_from(known))
    own_vv_w, own_w = draw(creditor_writes(own_vv, own))
    partner_vv_w, partner_w = draw(creditor_writes(partner_vv, partner))
    if form == "own":
        voorvoegsel, achternaam = own_vv_w, own_w
    elif form == "partner":
        voorvoegsel, achternaam = partner_vv_w, partner_w
    elif form == "partner-own":
        voorvoegsel, achternaam = partner_vv_w, f"{partner_w}-{own_vv_w} {own_w}".strip()
    else:
        voorvoegsel, achternaam = own_vv_w, f"{own_w}-{partner_vv_w} {partner_w}".strip()
    creditor = {
        "achternaam": achternaam,
        "voorvoegsel": voorvoegsel,
        "voorletters": initials_of(register["voornamen"]),
        "geboortedatum": "1970-01-31",
        "postcode": draw(st.sampled_from(["1011AB", "1011 ab", ""])),
        "huisnummer": draw(st.sampled_from(["5", ""])),
    }
    return register, creditor


def initials_of(voornamen: str) -> str:
    return "".join(f"{word[0]}." for word in voornamen.replace("-", " ").split())


@settings(max_examples=300)
@given(person_and_view())
def test_creditor_view_of_a_person_shares_a_name_token_with_the_register(
    case: tuple[dict[str, str], dict[str, str]],
) -> None:
    register_fields, creditor_fields = case
    tokeniser = Tokeniser(FIXED)
    register = tokeniser.tokens(PersonFields.from_register(**register_fields))
    creditor = tokeniser.tokens(PersonFields.from_creditor(**creditor_fields))
    shared = _shared(creditor, register)
    assert "naam_init_geb" in shared
    assert "fon_init_geb" in shared


@given(person_and_view(), st.integers(min_value=0, max_value=30))
def test_doubled_s_in_a_creditor_name_still_shares_a_phonetic_token(
    case: tuple[dict[str, str], dict[str, str]], where: int
) -> None:
    register_fields, creditor_fields = case
    name = creditor_fields["achternaam"]
    positions = [i for i, c in enumerate(name) if c in "sS"]
    if positions:
        i = positions[where % len(positions)]
        name = name[: i + 1] + name[i] + name[i + 1 :]
    creditor_fields = {**creditor_fields, "achternaam": name}
    tokeniser = Tokeniser(FIXED)
    register = tokeniser.tokens(PersonFields.from_register(**register_fields))
    creditor = tokeniser.tokens(PersonFields.from_creditor(**creditor_fields))
    assert "fon_init_geb" in _shared(creditor, register)


@settings(max_examples=100)
@given(person_and_view())
def test_register_tokens_are_the_hmac_of_the_specified_messages(
    case: tuple[dict[str, str], dict[str, str]],
) -> None:
    register_fields, creditor_fields = case
    for person in (
        PersonFields.from_register(**register_fields),
        PersonFields.from_creditor(**creditor_fields),
    ):
        expected = _reference_tokens(FIXED.secret, person, include_bsn=True)
        assert Tokeniser(FIXED).tokens(person, include_bsn=True) == expected


def test_token_values_never_contain_the_personal_values() -> None:
    shape = notice_tokens(Tokeniser(FIXED), _creditor(bsn="111222333"), include_bsn=True)
    text = repr(shape).lower()
    for value in ("jansen", "vries", "1970-01-01", "1011ab", "111222333"):
        assert value not in text


def test_generate_uses_the_utc_day() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert LinkageSecret.generate(now=now).kid.startswith("lk-20261122-")
