"""The envelope: a notice signed by its creditor (JWS), encrypted to the gateway (JWE).

See docs/envelope.md. ``open_envelope`` checks in a fixed order and stops at the first
failure with ``EnvelopeInvalid(cause=...)``; nothing about the notice is returned
until its signature has been verified against the authenticated sender's key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from joserfc import jwe

from keys.errors import EnvelopeInvalid
from keys.jose import (
    ENC_ALG,
    JWE_REGISTRY,
    KEY_ALG,
    HeaderError,
    b64d,
    check_jwe_header,
    check_jws_header,
    compact_parts,
    loads_object,
    parse_header,
)
from keys.jwa import OpenFailed, decrypt_compact, verify_es256
from keys.jwk import OIN, KeyID, PrivateKey, PublicKey
from keys.limits import CLOCK_SKEW, MAX_ENVELOPE_BYTES, MAX_NOTICE_LIFETIME
from keys.signed import sign_document

NOTICE_TYP = "notice+jwt"
ENVELOPE_CTY = "JWT"


@dataclass(frozen=True)
class SignerKey:
    """A partner's registered signing key, as the gateway knows it."""

    key: PublicKey
    owner: OIN
    revoked: bool = False


@dataclass(frozen=True)
class OpenedNotice:
    """A notice whose signature verified; ``claims`` is not yet schema-checked."""

    claims: dict[str, Any]
    jws: str
    payload_sha256: str
    signer_kid: KeyID


def seal_envelope(notice: dict[str, Any], *, signer: PrivateKey, gateway_key: PublicKey) -> str:
    """Sign ``notice`` with the creditor's key and encrypt it to the gateway's intake key."""
    return encrypt_jwt(sign_notice(notice, signer=signer), gateway_key)


def sign_notice(notice: dict[str, Any], *, signer: PrivateKey) -> str:
    """The signed notice (JWS compact); re-sending reuses it, so replay sees one payload."""
    return sign_document(notice, typ=NOTICE_TYP, signer=signer)


def encrypt_jwt(signed: str, recipient: PublicKey) -> str:
    """Encrypt a compact JWS to ``recipient`` as a nested JWT (JWE compact, cty JWT)."""
    return jwe.encrypt_compact(
        {"alg": KEY_ALG, "enc": ENC_ALG, "kid": recipient.kid, "cty": ENVELOPE_CTY},
        signed,
        recipient.jose,
        registry=JWE_REGISTRY,
    )


def envelope_sha256(envelope: str | bytes) -> str:
    """Hex SHA-256 of the envelope as received (receipts name envelopes by it)."""
    data = envelope.encode() if isinstance(envelope, str) else envelope
    return hashlib.sha256(data).hexdigest()


def open_envelope(
    envelope: str | bytes,
    *,
    intake_keys: Sequence[PrivateKey],
    signer_key: Callable[[KeyID], SignerKey | None],
    sender: OIN,
    audience: str,
    now: datetime,
    skew: timedelta = CLOCK_SKEW,
    max_lifetime: timedelta = MAX_NOTICE_LIFETIME,
) -> OpenedNotice:
    """Decrypt, verify and check the claims of one envelope from ``sender``."""
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise EnvelopeInvalid("envelope exceeds the size limit", cause="oversized")
    try:
        text = envelope.decode("ascii") if isinstance(envelope, bytes) else envelope
        if not text.isascii():
            raise HeaderError("malformed")
        parts = compact_parts(text, 5)
        outer = parse_header(parts[0])
        check_jwe_header(outer)
    except (HeaderError, UnicodeDecodeError) as exc:
        raise EnvelopeInvalid("envelope header refused", cause=_cause(exc)) from None

    key = next((k for k in intake_keys if k.kid == outer["kid"] and k.use == "enc"), None)
    if key is None:
        raise EnvelopeInvalid("envelope is not for an intake key of ours", cause="wrong_recipient")
    if outer.get("cty") != ENVELOPE_CTY:
        raise EnvelopeInvalid("envelope must carry a nested JWT", cause="content_type_invalid")
    try:
        inner = decrypt_compact(parts, outer["epk"], key)
    except OpenFailed as exc:
        raise EnvelopeInvalid("envelope does not decrypt", cause="decrypt_failed") from exc

    signed, header, jws_parts = _inner_jws(inner)
    record = signer_key(KeyID(header["kid"]))
    if record is None:
        raise EnvelopeInvalid("signing key is not registered", cause="key_unknown")
    if record.revoked:
        raise EnvelopeInvalid("signing key was revoked", cause="key_revoked")
    if record.owner != sender:
        raise EnvelopeInvalid("signer is not the sender", cause="signer_mismatch")
    try:
        signing_input = f"{jws_parts[0]}.{jws_parts[1]}".encode("ascii")
        verify_es256(signing_input, b64d(jws_parts[2]), record.key)
    except (OpenFailed, ValueError) as exc:
        raise EnvelopeInvalid("signature does not verify", cause="signature_invalid") from exc

    try:
        payload = b64d(jws_parts[1])
        claims = loads_object(payload)
    except ValueError as exc:
        raise EnvelopeInvalid("payload is not a JSON object", cause="payload_malformed") from exc
    _check_claims(claims, sender, audience, now, skew, max_lifetime)
    return OpenedNotice(
        claims=claims,
        jws=signed,
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        signer_kid=record.key.kid,
    )


def notice_claims(signed: str) -> dict[str, Any]:
    """The claims of a signed notice that ``open_envelope`` verified earlier (the
    gateway keeps it sealed at rest), read without verifying the signature again.

    Only for a notice that came out of ``OpenedNotice.jws``: anything from outside goes
    through ``open_envelope``. Raises ``EnvelopeInvalid(cause="malformed")`` when the
    text is not a compact JWS of type ``notice+jwt`` with a JSON object payload.
    """
    try:
        parts = compact_parts(signed, 3)
        check_jws_header(parse_header(parts[0]), typ=NOTICE_TYP)
        return loads_object(b64d(parts[1]))
    except ValueError:  # HeaderError is a ValueError too
        raise EnvelopeInvalid("not a signed notice", cause="malformed") from None


def _inner_jws(inner: bytes) -> tuple[str, dict[str, Any], list[str]]:
    try:
        signed = inner.decode("ascii")
    except UnicodeDecodeError:
        raise EnvelopeInvalid("content is not a JWS", cause="signature_missing") from None
    parts = signed.split(".")
    if len(parts) != 3 or not parts[2]:
        raise EnvelopeInvalid("content is not a signed JWS", cause="signature_missing")
    try:
        compact_parts(signed, 3)
        header = parse_header(parts[0])
        check_jws_header(header, typ=NOTICE_TYP)
    except HeaderError as exc:
        raise EnvelopeInvalid("signature header refused", cause=_cause(exc)) from None
    return signed, header, parts


def _check_claims(
    claims: dict[str, Any],
    sender: OIN,
    audience: str,
    now: datetime,
    skew: timedelta,
    max_lifetime: timedelta,
) -> None:
    iat, exp = claims.get("iat"), claims.get("exp")
    if not _is_int(iat) or not _is_int(exp):
        raise EnvelopeInvalid("iat and exp must be integers", cause="payload_malformed")
    if claims.get("iss") != sender:
        raise EnvelopeInvalid("issuer is not the sender", cause="signer_mismatch")
    if claims.get("aud") != audience:
        raise EnvelopeInvalid("notice is for another gateway", cause="audience_mismatch")
    t = now.timestamp()
    if exp <= t - skew.total_seconds():
        raise EnvelopeInvalid("notice has expired", cause="expired")
    if iat > t + skew.total_seconds():
        raise EnvelopeInvalid("notice is dated in the future", cause="not_yet_valid")
    if exp - iat > max_lifetime.total_seconds() or exp < iat:
        raise EnvelopeInvalid("notice lifetime is too long", cause="lifetime_too_long")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _cause(exc: Exception) -> str:
    return exc.cause if isinstance(exc, HeaderError) else "malformed"
