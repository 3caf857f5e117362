"""Keyed match tokens: the only form in which a person's identifying fields leave a party.

A token is ``base64url(HMAC-SHA256(key_type, field ‖ 0x1F ‖ field …)[:16])`` over
normalised fields (``keys.normalise``). Each token type has its own key, derived with
HKDF-SHA256 from the linkage secret (salt ``signaalpoort/match-tokens/v1``, info
``token:<type>``), so a token of one type says nothing about a token of another. The
creditor and the municipality hold the linkage secret; the gateway, which compares the
tokens, never does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys import normalise
from keys.errors import SecretInvalid
from keys.jose import b64d, b64e

__all__ = [
    "TOKEN_TYPES",
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
  birth date apart by the second initial).

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
    ) -> PersonFields:
        """What a creditor knows, as it knows it; an invalid field raises ``FieldInvalid``."""
        letters = normalise.initials(voorletters)
        return cls(
            cores=tuple(normalise.surname_cores(achternaam, voorvoegsel)),
            initial=letters[:1],
            initials2=letters[:2] if len(letters) >= 2 else "",
            birth_date=normalise.optional_birth_date(geboortedatum),
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
            birth_date=normalise.optional_birth_date(known_date),
            postcode=_optional_postcode(postcode),
            huisnummer=_optional_huisnummer(huisnummer),
            bsn=normalise.bsn(bsn) if bsn.strip() else None,
        )


def _optional_postcode(value: str) -> str | None:
    return normalise.postcode(value) if value.strip() else None


def _optional_huisnummer(value: str | int) -> int | None:
    if isinstance(value, str) and not value.strip():
        return None
    return normalise.huisnummer(value)


class Tokeniser:
    """Makes match tokens with the keys derived from one linkage secret."""

    __slots__ = ("_kid", "_macs")

    def __init__(self, secret: LinkageSecret) -> None:
        self._kid = secret.kid
        self._macs = {
            t: _hmac_state(derive_key(secret.secret, salt=HKDF_SALT, info=b"token:" + t.encode()))
            for t in TOKEN_TYPES
        }

    @property
    def kid(self) -> str:
        """The kid of the linkage secret, carried beside the tokens it keyed."""
        return self._kid

    def token(self, type_: str, *fields: str) -> str:
        """The token of one type over already normalised fields."""
        try:
            state = self._macs[type_]
        except KeyError:
            raise ValueError(f"unknown token type {type_!r}") from None
        _check_fields(fields)
        return _mac(state, FIELD_SEPARATOR.join(fields))

    def tokens(self, person: PersonFields, *, include_bsn: bool = False) -> dict[str, list[str]]:
        """Every token whose fields are all known: one per core surname where a surname
        is used; values sorted and unique; types without a value left out.
        """
        # The register side calls this a million times: each type's messages are built
        # from per-field value lists, and the fields are checked once per person.
        cores = list(dict.fromkeys(c for c in person.cores if c))
        _check_fields(
            (
                *cores,
                *(part for pair in person.swapped for part in pair),
                person.initial,
                person.initials2,
                person.birth_date or "",
                person.postcode or "",
                person.bsn or "",
            )
        )
        values: dict[str, list[str]] = {
            "bsn": [person.bsn] if include_bsn and person.bsn else [],
            "name": cores,
            "sound": list(dict.fromkeys(k for k in map(normalise.phonetic, cores) if k)),
            "initial": [person.initial] if person.initial else [],
            "initials2": [person.initials2] if person.initials2 else [],
            "birth": [person.birth_date] if person.birth_date else [],
            "postcode": [person.postcode] if person.postcode else [],
            "huisnummer": [str(person.huisnummer)] if person.huisnummer is not None else [],
        }
        out: dict[str, list[str]] = {}
        for type_, fields in TOKEN_FIELDS.items():
            messages = values[fields[0]]
            if not messages:
                continue
            for field in fields[1:]:
                parts = values[field]
                if not parts:
                    break
                if len(parts) == 1:
                    tail = FIELD_SEPARATOR + parts[0]
                    messages = [m + tail for m in messages]
                else:
                    messages = [m + FIELD_SEPARATOR + v for m in messages for v in parts]
            else:
                if type_ in _SWAPPABLE:
                    messages = list(messages)
                    rest = "".join(FIELD_SEPARATOR + values[f][0] for f in fields[2:])
                    for core, initial in person.swapped:
                        key = core if fields[0] == "name" else normalise.phonetic(core)
                        if key:
                            messages.append(f"{key}{FIELD_SEPARATOR}{initial}{rest}")
                state = self._macs[type_]
                out[type_] = sorted({_mac(state, m) for m in messages})
        return out


def _check_fields(fields: tuple[str, ...]) -> None:
    for field in fields:
        if FIELD_SEPARATOR in field:
            # The separator inside a field would let two field lists share one token.
            raise ValueError("a token field contains the field separator")


def _sha256(data: bytes = b"") -> Any:
    return hashlib.sha256(data)


def _hmac_state(key: bytes) -> hmac.HMAC:
    # A digestmod that is not OpenSSL's own constructor makes ``hmac`` build HMAC from two
    # SHA-256 states (RFC 2104) that ``copy`` clones cheaply; OpenSSL 3's HMAC spends
    # more on per-call set-up than on a short message, and this runs a million times.
    return hmac.new(key, digestmod=_sha256)


def _mac(state: hmac.HMAC, message: str) -> str:
    mac = state.copy()
    mac.update(message.encode())
    digest = mac.digest()[:TOKEN_BYTES]
    # base64url of 16 bytes is 22 characters and two "=" of padding, which go.
    return base64.urlsafe_b64encode(digest)[:22].decode("ascii")


class NoticeTokens(TypedDict):
    """The ``tokens`` member of a notice: the secret's kid and tokens per type."""

    kid: str
    values: dict[str, list[str]]


def notice_tokens(
    tokeniser: Tokeniser, person: PersonFields, *, include_bsn: bool = False
) -> NoticeTokens:
    """The tokens of one person in the shape a notice carries them."""
    return {"kid": tokeniser.kid, "values": tokeniser.tokens(person, include_bsn=include_bsn)}
