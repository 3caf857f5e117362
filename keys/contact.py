"""The contact block: who the signal is about, readable only by its one recipient.

A JWE in general JSON serialization with one recipient per key of the municipality's
outreach key set. The notice's ``jti`` sits in the protected header, which is
authenticated, so a block moved to another notice no longer opens. The gateway checks
the shape and strips every recipient but the one the signal goes to; it never holds a
key that opens it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwe import GeneralJSONSerialization

from keys.errors import ContactBlockInvalid
from keys.jose import (
    CONTACT_REGISTRY,
    ENC_ALG,
    KEY_ALG,
    HeaderError,
    b64d,
    canonical,
    check_jwe_header,
    is_b64url,
    is_epk,
    loads_object,
)
from keys.jwk import KeyID, PrivateKey, PublicKey
from keys.limits import MAX_CONTACT_RECIPIENTS

CONTACT_CTY = "contact+json"

CONTACT_FIELDS = (
    "voorletters",
    "voorvoegsel",
    "achternaam",
    "geboortedatum",
    "straatnaam",
    "huisnummer",
    "huisletter",
    "huisnummertoevoeging",
    "postcode",
    "plaatsnaam",
    "telefoon",
    "email",
    "klantnummer",
)

_BLOCK_MEMBERS = frozenset({"protected", "recipients", "iv", "ciphertext", "tag"})
_PROTECTED = frozenset({"enc", "cty", "jti"})
_RECIPIENT_HEADER = frozenset({"alg", "kid", "epk"})
_RECIPIENT_MEMBERS = frozenset({"header", "encrypted_key"})


def seal_contact(
    contact: Mapping[str, str], *, jti: str, recipients: Sequence[PublicKey]
) -> dict[str, Any]:
    """Encrypt contact details once, to every key in ``recipients``, bound to ``jti``."""
    unknown = set(contact) - set(CONTACT_FIELDS)
    if unknown:
        raise ContactBlockInvalid(f"unknown contact fields: {sorted(unknown)}")
    if not recipients or len(recipients) > MAX_CONTACT_RECIPIENTS:
        raise ContactBlockInvalid("a contact block needs 1 to 64 recipients")
    obj = jwe.GeneralJSONEncryption(
        {"enc": ENC_ALG, "cty": CONTACT_CTY, "jti": jti}, canonical(dict(contact))
    )
    for key in recipients:
        if key.use != "enc":
            raise ContactBlockInvalid("contact blocks are sealed to encryption keys only")
        obj.add_recipient({"alg": KEY_ALG, "kid": key.kid}, key.jose)
    return dict(jwe.encrypt_json(obj, None, registry=CONTACT_REGISTRY))


def check_contact_block(block: Any, *, jti: str) -> list[KeyID]:
    """Check the block's shape and binding without opening it; return its recipients' kids."""
    if not isinstance(block, dict) or set(block) != _BLOCK_MEMBERS:
        raise ContactBlockInvalid("contact block has the wrong members", cause="malformed")
    for member in ("protected", "iv", "ciphertext", "tag"):
        value = block[member]
        if not isinstance(value, str):
            raise ContactBlockInvalid("contact block member is not a string", cause="malformed")
        if not is_b64url(value):
            raise ContactBlockInvalid("contact block is not base64url", cause="malformed")
    try:
        raw = b64d(block["protected"])
        protected = loads_object(raw)
    except ValueError:
        raise ContactBlockInvalid("contact header is not JSON", cause="malformed") from None
    if set(protected) != _PROTECTED or protected.get("enc") != ENC_ALG:
        raise ContactBlockInvalid("contact header refused", cause="header_invalid")
    if protected.get("cty") != CONTACT_CTY or not _is_compact(protected, raw):
        # The AAD is the protected member as received; JOSE libraries that rebuild it
        # from the parsed header need it in compact form, so the profile requires that.
        raise ContactBlockInvalid("contact header refused", cause="header_invalid")
    if protected.get("jti") != jti:
        raise ContactBlockInvalid("contact block belongs to another notice", cause="wrong_notice")
    recipients = block["recipients"]
    if not isinstance(recipients, list) or not 1 <= len(recipients) <= MAX_CONTACT_RECIPIENTS:
        raise ContactBlockInvalid("contact block needs 1 to 64 recipients", cause="malformed")
    kids: list[KeyID] = []
    for r in recipients:
        if _well_formed(r):
            kids.append(KeyID(r["header"]["kid"]))
            continue
        # Not well formed: the checks below name the precise cause.
        if not isinstance(r, dict) or set(r) != {"header", "encrypted_key"}:
            raise ContactBlockInvalid("contact recipient malformed", cause="malformed")
        header = r["header"]
        if not isinstance(header, dict) or not isinstance(r["encrypted_key"], str):
            raise ContactBlockInvalid("contact recipient malformed", cause="malformed")
        try:
            if "enc" in header:
                raise HeaderError("header_invalid")
            check_jwe_header({**header, "enc": ENC_ALG}, allowed=_RECIPIENT_HEADER | {"enc"})
            if not is_b64url(r["encrypted_key"]):
                raise ValueError("encrypted_key is not base64url")
        except (HeaderError, ValueError) as exc:
            cause = exc.cause if isinstance(exc, HeaderError) else "malformed"
            raise ContactBlockInvalid("contact recipient refused", cause=cause) from None
        kids.append(KeyID(header["kid"]))
    if len(set(kids)) != len(kids):
        raise ContactBlockInvalid("contact block names a recipient twice", cause="malformed")
    return kids


def _well_formed(recipient: Any) -> bool:
    # The common case, checked in one expression: the intake runs this per recipient.
    if type(recipient) is not dict or recipient.keys() != _RECIPIENT_MEMBERS:
        return False
    header, wrapped = recipient["header"], recipient["encrypted_key"]
    return (
        type(header) is dict
        and header.keys() == _RECIPIENT_HEADER
        and header["alg"] == KEY_ALG
        and type(header["kid"]) is str
        and is_epk(header["epk"])
        and type(wrapped) is str
        and is_b64url(wrapped)
    )


def strip_contact(block: dict[str, Any], *, kid: str) -> dict[str, Any]:
    """The same block with only the recipient ``kid`` left (what the gateway delivers)."""
    keep = [r for r in block["recipients"] if r["header"]["kid"] == kid]
    if not keep:
        raise ContactBlockInvalid(
            "the key is not a recipient of this block", cause="not_a_recipient"
        )
    return {**block, "recipients": keep}


def open_contact(block: dict[str, Any], *, keys: Sequence[PrivateKey], jti: str) -> dict[str, str]:
    """Open a block with one of this party's keys; it must be bound to ``jti``."""
    kids = check_contact_block(block, jti=jti)
    key = next((k for k in keys if k.kid in kids and k.use == "enc"), None)
    if key is None:
        raise ContactBlockInvalid("none of our keys is a recipient", cause="not_a_recipient")
    single = strip_contact(block, kid=key.kid)
    try:
        plaintext = jwe.decrypt_json(
            cast(GeneralJSONSerialization, single), key.jose, registry=CONTACT_REGISTRY
        ).plaintext
        contact = loads_object(plaintext or b"")
    except (JoseError, ValueError) as exc:
        raise ContactBlockInvalid("contact block does not decrypt", cause="decrypt_failed") from exc
    if set(contact) - set(CONTACT_FIELDS) or not all(isinstance(v, str) for v in contact.values()):
        raise ContactBlockInvalid("contact content has the wrong shape", cause="malformed")
    return contact


def _is_compact(header: dict[str, Any], raw: bytes) -> bool:
    """Whether ``raw`` is ``header`` written compactly, non-ASCII as ``\\u`` escapes."""
    if raw.isascii() and orjson.dumps(header) == raw:
        return True  # the same bytes the standard library writes below, found faster
    return json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii") == raw
