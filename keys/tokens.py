"""Keyed match tokens: the only form in which a person's identifying fields leave a party.

A token is ``base64url(HMAC-SHA256(key_type, field ‖ 0x1F ‖ field …)[:16])`` over
normalised fields (``keys.normalise``). Each token type has its own key, derived with
HKDF-SHA256 from the linkage secret (salt ``signaalpoort/match-tokens/v1``, info
``token:<type>``), so a token of one type says nothing about a token of another. The
creditor and the municipality hold the linkage secret; the gateway, which compares the
tokens, never does.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys import normalise
from keys.errors import SecretInvalid
from keys.jose import b64d, b64e

__all__ = [
    "TOKEN_TYPES",
    "HMACKey",
    "LinkageSecret",
    "NoticeTokens",
    "PersonFields",
    "Tokeniser",
    "derive_key",
    "notice_tokens",
]

SECRET_BYTES = 32
TOKEN_BYTES = 16
HKDF_SALT = b"signaalpoort/match-tokens/v1"
FIELD_SEPARATOR = "\x1f"

TOKEN_FIELDS: dict[str, tuple[str, ...]] = {
    "bsn": ("bsn",),
    "naam_init_geb": ("name", "initial", "birth"),
    "pc_hnr_geb": ("postcode", "huisnummer", "birth"),
    "naam_pc_hnr": ("name", "postcode", "huisnummer"),
    "fon_init_geb": ("sound", "initial", "birth"),
    "fon_pc_hnr": ("sound", "postcode", "huisnummer"),
    "init_pc_hnr": ("initial", "postcode", "huisnummer"),
    "init2_pc_hnr": ("initials2", "postcode", "huisnummer"),
    "pc_geb": ("postcode", "birth"),
    "naam_geb": ("name", "birth"),
    "init_geb_hnr": ("initial", "birth", "huisnummer"),
    "naam_init2_geb": ("name", "initials2", "birth"),
    "init_geb": ("initial", "birth"),
}
"""Each token type and the fields it is made of, in the order they are keyed:

- ``bsn``: BSN (only from categories allowed to hold one);
- ``naam_init_geb``: core surname, first initial, birth date;
- ``pc_hnr_geb``: postcode, house number, birth date;
- ``naam_pc_hnr``: core surname, postcode, house number;
- ``fon_init_geb``: phonetic key of the core surname, first initial, birth date;
- ``fon_pc_hnr``: phonetic key of the core surname, postcode, house number;
- ``init_pc_hnr``: first initial, postcode, house number (weak; finds people known by
  a surname the register does not list, such as a partner's under naamgebruik E);
- ``init2_pc_hnr``: first two initials, postcode, house number; only for a person with
  two initials or more (sets apart two people of one surname and first initial at one
  address when a notice has no birth date);
- ``pc_geb``: postcode, birth date (the house number written wrongly or missing);
- ``naam_geb``: core surname, birth date (the initial wrong, the address another);
- ``init_geb_hnr``: first initial, birth date, house number (surname and postcode both
  written wrongly);
- ``naam_init2_geb``: core surname, first two initials, birth date; only for a person
  with two initials or more (tells a look-alike of one surname, first initial and
  birth date apart by the second initial);
- ``init_geb``: first initial, birth date (the surname and the address both written
  wrongly, or moved: the blocking by which the fuzzy encodings, ``keys.bloom``, find a
  candidate; alone it is no evidence of a match).

A field is ``name`` (a core surname, ``keys.normalise.surname_cores``), ``sound`` (its
``keys.normalise.phonetic`` key), ``initial``, ``initials2``, ``birth`` (ISO date),
``postcode`` (``1234AB``), ``huisnummer`` (decimal, no leading zeros) or ``bsn``. Types
are only ever appended, so a type's bit in the register (``gateway.register.TYPE_BITS``)
stays the same.
"""
TOKEN_TYPES: tuple[str, ...] = tuple(TOKEN_FIELDS)
"""The token types in their fixed order."""
_SWAPPABLE = frozenset({"naam_init_geb", "fon_init_geb"})
"""Types over a surname and the first initial, which a register person also gets with
given name and surname swapped (``PersonFields.swapped``)."""

_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, repr=False)
class LinkageSecret:
    """The secret shared by creditors and the municipality from which token keys derive."""

    kid: str
    secret: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not _KID.fullmatch(self.kid):
            raise SecretInvalid("linkage secret: kid must be 1-64 of [A-Za-z0-9._-]")
        if not isinstance(self.secret, bytes) or len(self.secret) != SECRET_BYTES:
            raise SecretInvalid(f"linkage secret: must be {SECRET_BYTES} bytes")

    @classmethod
    def generate(cls, *, now: datetime) -> LinkageSecret:
        """A fresh random secret with a kid like ``lk-20261122-1a2b3c4d`` (UTC date)."""
        day = now.astimezone(UTC) if now.tzinfo is not None else now
        kid = f"lk-{day:%Y%m%d}-{secrets.token_hex(4)}"
        return cls(kid=kid, secret=secrets.token_bytes(SECRET_BYTES))

    def to_dict(self) -> dict[str, str]:
        """``{"kid": ..., "secret": <base64url>}``; this holds the secret in the clear."""
        return {"kid": self.kid, "secret": b64e(self.secret)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinkageSecret:
        """The inverse of ``to_dict``; anything else raises ``SecretInvalid``."""
        if not isinstance(data, Mapping) or set(data) != {"kid", "secret"}:
            raise SecretInvalid("linkage secret: expected exactly the members kid and secret")
        kid, encoded = data["kid"], data["secret"]
        if not isinstance(kid, str) or not isinstance(encoded, str):
            raise SecretInvalid("linkage secret: kid and secret must be strings")
        try:
            secret = b64d(encoded)
        except ValueError:
            raise SecretInvalid("linkage secret: secret is not base64url") from None
        return cls(kid=kid, secret=secret)

    def __repr__(self) -> str:
        return f"LinkageSecret(kid={self.kid!r}, secret=<{len(self.secret)} bytes redacted>)"


def derive_key(secret: bytes, *, salt: bytes, info: bytes) -> bytes:
    """A 32-byte key for one purpose, derived from the linkage secret with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


@dataclass(frozen=True)
class PersonFields:
    """The normalised fields of one person that tokens are made of; None is unknown."""

    cores: tuple[str, ...]
    initial: str
    birth_date: str | None
    postcode: str | None
    huisnummer: int | None
    bsn: str | None
    initials2: str = ""
    """The first two initials, or "" for a person with fewer."""
    given: tuple[str, ...] = ()
    """The given names in full (``keys.normalise.given_names``), where known: the
    register has them all, a creditor those it keeps. No token is made of them; the
    fuzzy encodings carry them (``keys.bloom``)."""
    birth_swapped: str | None = None
    """Creditor side only: the birth date with day and month swapped, where both are 12
    or less and differ, as a creditor may have written it. No token is made of it; the
    fuzzy encodings carry it beside the date (``keys.bloom``)."""
    swapped: tuple[tuple[str, str], ...] = ()
    """Register side only: (core, initial) with given name and surname swapped, as a
    creditor that mixed up the two columns writes them: the first given name as the
    surname and the surname's first letter as the initial ("Danny Stephenson" as
    "S. Danny")."""

    @classmethod
    def from_creditor(
        cls,
        *,
        achternaam: str,
        voorvoegsel: str,
        voorletters: str,
        geboortedatum: str,
        postcode: str,
        huisnummer: str | int,
        bsn: str = "",
        voornamen: str = "",
    ) -> PersonFields:
        """What a creditor knows, as it knows it; an invalid field raises ``FieldInvalid``.

        ``voornamen`` are given names in full, where the creditor keeps them; without
        ``voorletters`` the initials are theirs.
        """
        letters = normalise.initials(voorletters or voornamen)
        birth = normalise.optional_birth_date(geboortedatum)
        return cls(
            cores=tuple(normalise.surname_cores(achternaam, voorvoegsel)),
            initial=letters[:1],
            initials2=letters[:2] if len(letters) >= 2 else "",
            given=normalise.given_names(voornamen),
            birth_date=birth,
            birth_swapped=_day_month_swapped(birth),
            postcode=_optional_postcode(postcode),
            huisnummer=_optional_huisnummer(huisnummer),
            bsn=normalise.bsn(bsn) if bsn.strip() else None,
        )

    @classmethod
    def from_register(
        cls,
        *,
        geslachtsnaam: str,
        voorvoegsel: str,
        voornamen: str,
        naamgebruik: str,
        partner_geslachtsnaam: str,
        partner_voorvoegsel: str,
        geboortedatum: str,
        postcode: str,
        huisnummer: str | int,
        bsn: str,
    ) -> PersonFields:
        """One BRP record, with every surname a creditor may know (``name_variants``).

        A partly unknown BRP birth date (``1960-00-00``, ``1960-05-00``) counts as
        unknown; any other invalid field raises ``FieldInvalid``.
        """
        cores = normalise.name_variants(
            geslachtsnaam=geslachtsnaam,
            voorvoegsel=voorvoegsel,
            naamgebruik=naamgebruik,
            partner_geslachtsnaam=partner_geslachtsnaam,
            partner_voorvoegsel=partner_voorvoegsel,
        )
        known_date = "" if geboortedatum.strip().endswith("-00") else geboortedatum
        letters = normalise.initials(voornamen)
        first_name = voornamen.split()[:1]
        given = normalise.surname_cores(first_name[0]) if first_name else []
        surname_initial = normalise.initials(geslachtsnaam)[:1]
        swapped = ((given[0], surname_initial),) if given and surname_initial else ()
        return cls(
            swapped=swapped,
            cores=tuple(cores),
            initial=letters[:1],
            initials2=letters[:2] if len(letters) >= 2 else "",
            given=normalise.given_names(voornamen),
            birth_date=normalise.optional_birth_date(known_date),
            postcode=_optional_postcode(postcode),
            huisnummer=_optional_huisnummer(huisnummer),
            bsn=normalise.bsn(bsn) if bsn.strip() else None,
        )


def _day_month_swapped(birth: str | None) -> str | None:
    if birth is None or birth[5:7] == birth[8:] or int(birth[8:]) > 12:
        return None
    return f"{birth[:4]}-{birth[8:]}-{birth[5:7]}"


def _optional_postcode(value: str) -> str | None:
    return normalise.postcode(value) if value.strip() else None


def _optional_huisnummer(value: str | int) -> int | None:
    if isinstance(value, str) and not value.strip():
        return None
    return normalise.huisnummer(value)


_BLOCK_BYTES = 64  # SHA-256's block, to which HMAC pads the key
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
# Standard base64 to base64url (RFC 4648 §5), for bytes.translate.
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class HMACKey:
    """An HMAC-SHA256 key (RFC 2104) made ready for many short messages.

    ``digest(m)`` equals ``hmac.new(key, m, hashlib.sha256).digest()``. The key is
    absorbed once into an inner and an outer SHA-256 state, and each message costs a
    copy of each: fewer state copies and Python calls than ``hmac.HMAC.copy()`` and
    ``digest()``, which counts when a register of a million persons is tokenised.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK_BYTES:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK_BYTES, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        """The 32-byte HMAC-SHA256 of ``message``."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __repr__(self) -> str:
        return "HMACKey(<redacted>)"


# The fields ``Tokeniser.tokens`` fills, by position. Only a surname field can hold more
# than one value, and it comes first in every type, so a type's messages are each first
# value followed by one fixed tail.
_FIELD_POSITION = {
    f: i
    for i, f in enumerate(
        ("bsn", "name", "sound", "initial", "initials2", "birth", "postcode", "huisnummer")
    )
}
_MULTIPLE = frozenset({"name", "sound"})
if any(_MULTIPLE.intersection(fields[1:]) for fields in TOKEN_FIELDS.values()):
    raise AssertionError("TOKEN_FIELDS: a surname field must come first")


class Tokeniser:
    """Makes match tokens with the keys derived from one linkage secret."""

    __slots__ = ("_kid", "_macs", "_plan")

    def __init__(self, secret: LinkageSecret) -> None:
        self._kid = secret.kid
        self._macs = {
            t: HMACKey(derive_key(secret.secret, salt=HKDF_SALT, info=b"token:" + t.encode()))
            for t in TOKEN_TYPES
        }
        # Per type: where its first field and its other fields are, its two HMAC states,
        # and for a swappable type how a swapped given name becomes the first field.
        self._plan = tuple(
            (
                t,
                _FIELD_POSITION[fields[0]],
                tuple(_FIELD_POSITION[f] for f in fields[1:]),
                self._macs[t]._inner,
                self._macs[t]._outer,
                (_unchanged if fields[0] == "name" else normalise.phonetic)
                if t in _SWAPPABLE
                else None,
            )
            for t, fields in TOKEN_FIELDS.items()
        )

    @property
    def kid(self) -> str:
        """The kid of the linkage secret, carried beside the tokens it keyed."""
        return self._kid

    def token(self, type_: str, *fields: str) -> str:
        """The token of one type over already normalised fields."""
        try:
            key = self._macs[type_]
        except KeyError:
            raise ValueError(f"unknown token type {type_!r}") from None
        _check_fields(fields)
        digest = key.digest(FIELD_SEPARATOR.join(fields).encode())[:TOKEN_BYTES]
        return _b64_token(digest)

    def tokens(self, person: PersonFields, *, include_bsn: bool = False) -> dict[str, list[str]]:
        """Every token whose fields are all known: one per core surname where a surname
        is used; values sorted and unique; types without a value left out.
        """
        # The register side calls this a million times, so the HMAC and base64url of
        # ``token`` are written out inline here: a function call per token costs about
        # as much as its SHA-256.
        cores = list(dict.fromkeys(person.cores))
        if "" in cores:
            cores.remove("")
        swapped = person.swapped
        bsn, initial, initials2 = person.bsn, person.initial, person.initials2
        birth, postcode = person.birth_date, person.postcode
        if FIELD_SEPARATOR in "".join(
            (
                *cores,
                *(part for pair in swapped for part in pair),
                initial,
                initials2,
                birth or "",
                postcode or "",
                bsn or "",
            )
        ):
            # The separator inside a field would let two field lists share one token.
            raise ValueError("a token field contains the field separator")
        sounds = list(dict.fromkeys(map(normalise.phonetic, cores)))
        if "" in sounds:
            sounds.remove("")
        values: tuple[list[str], ...] = (
            [bsn] if include_bsn and bsn else [],
            cores,
            sounds,
            [initial] if initial else [],
            [initials2] if initials2 else [],
            [birth] if birth else [],
            [postcode] if postcode else [],
            [str(person.huisnummer)] if person.huisnummer is not None else [],
        )
        sep, size, b64, urlsafe = FIELD_SEPARATOR, TOKEN_BYTES, binascii.b2a_base64, _URLSAFE
        out: dict[str, list[str]] = {}
        for type_, first, others, inner, outer, swap in self._plan:
            heads = values[first]
            if not heads:
                continue
            tail = ""
            for i in others:
                known = values[i]
                if not known:
                    break
                tail += sep + known[0]
            else:
                if swap is not None and swapped:
                    # The first two fields are (surname, initial); the rest stays.
                    rest = tail[len(sep) + len(values[others[0]][0]) :]
                    heads = [head + tail for head in heads]
                    for core, letter in swapped:
                        key = swap(core)
                        if key:
                            heads.append(f"{key}{sep}{letter}{rest}")
                    tail = ""
                found: list[str] = []
                for head in heads:
                    h = inner.copy()
                    h.update((head + tail).encode())
                    mac = outer.copy()
                    mac.update(h.digest())
                    # base64url of 16 bytes is 22 characters and "==\n", which go.
                    found.append(b64(mac.digest()[:size]).translate(urlsafe, b"=\n").decode())
                out[type_] = found if len(found) == 1 else sorted(set(found))
        return out


def _unchanged(text: str) -> str:
    return text


def _check_fields(fields: tuple[str, ...]) -> None:
    for field in fields:
        if FIELD_SEPARATOR in field:
            # The separator inside a field would let two field lists share one token.
            raise ValueError("a token field contains the field separator")


def _b64_token(digest: bytes) -> str:
    # base64url without padding; binascii with a translate is cheaper than base64's.
    return binascii.b2a_base64(digest, newline=False).translate(_URLSAFE, b"=").decode()


class NoticeTokens(TypedDict):
    """The ``tokens`` member of a notice: the secret's kid, tokens per type and, where
    the creditor made them, the fuzzy encodings (``keys.bloom.BloomEncoder.person``)."""

    kid: str
    values: dict[str, list[str]]
    fuzzy: NotRequired[dict[str, list[str]]]


def notice_tokens(
    tokeniser: Tokeniser,
    person: PersonFields,
    *,
    include_bsn: bool = False,
    fuzzy: dict[str, list[str]] | None = None,
) -> NoticeTokens:
    """The tokens of one person in the shape a notice carries them, with ``fuzzy``
    (made with the same secret) when given."""
    out: NoticeTokens = {
        "kid": tokeniser.kid,
        "values": tokeniser.tokens(person, include_bsn=include_bsn),
    }
    if fuzzy:
        out["fuzzy"] = fuzzy
    return out
