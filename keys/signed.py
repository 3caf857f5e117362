"""Signed JSON documents (JWS compact, ES256) with an explicit ``typ``.

The outreach key set, receipts, audit checkpoints and the linkage secret's transfer
all use this one shape; each names its own ``typ`` so one kind can never be passed
off as another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from keys.errors import Error
from keys.jose import (
    JWS_REGISTRY,
    SIG_ALG,
    HeaderError,
    canonical,
    check_jws_header,
    compact_parts,
    loads_object,
    parse_header,
)
from keys.jwk import PrivateKey, PublicKey


def sign_document(
    payload: Any, *, typ: str, signer: PrivateKey, registry: JWSRegistry = JWS_REGISTRY
) -> str:
    """Sign canonical JSON of ``payload`` as a compact JWS of type ``typ``."""
    if signer.use != "sig":
        raise Error("documents are signed with signing keys only")
    return jws.serialize_compact(
        {"alg": SIG_ALG, "kid": signer.kid, "typ": typ},
        canonical(payload),
        signer.jose,
        registry=registry,
    )


def sign_bytes(message: bytes, *, typ: str, signer: PrivateKey) -> str:
    """Sign raw bytes (e.g. an audit checkpoint statement) as a compact JWS."""
    return jws.serialize_compact(
        {"alg": SIG_ALG, "kid": signer.kid, "typ": typ}, message, signer.jose, registry=JWS_REGISTRY
    )


def verify_bytes(
    token: str,
    *,
    typ: str,
    keys: Sequence[PublicKey],
    error: type[Error],
    registry: JWSRegistry = JWS_REGISTRY,
) -> bytes:
    """Verify a compact JWS of type ``typ`` by one of ``keys``; return its payload."""
    try:
        header = parse_header(compact_parts(token, 3)[0])
        check_jws_header(header, typ=typ)
    except HeaderError as exc:
        raise error(f"{typ} header refused", cause=exc.cause) from None
    key = next((k for k in keys if k.kid == header["kid"] and k.use == "sig"), None)
    if key is None:
        raise error(f"{typ} signed by an unknown key", cause="key_unknown")
    try:
        payload = jws.deserialize_compact(token, key.jose, registry=registry).payload
    except (JoseError, ValueError) as exc:
        raise error(f"{typ} signature does not verify", cause="signature_invalid") from exc
    return payload


def verify_document(
    token: str,
    *,
    typ: str,
    keys: Sequence[PublicKey],
    error: type[Error],
    registry: JWSRegistry = JWS_REGISTRY,
) -> dict[str, Any]:
    """Verify a signed document and parse its JSON object payload."""
    payload = verify_bytes(token, typ=typ, keys=keys, error=error, registry=registry)
    try:
        return loads_object(payload)
    except ValueError as exc:
        raise error(f"{typ} payload is not a JSON object", cause="malformed") from exc


def signer_kid(token: str) -> str:
    """The ``kid`` in a compact JWS header, unverified (to pick the verifying key)."""
    try:
        kid = parse_header(compact_parts(token, 3)[0]).get("kid")
    except HeaderError as exc:
        raise Error("not a compact JWS", cause="malformed") from exc
    if not isinstance(kid, str):
        raise Error("JWS header has no kid", cause="malformed")
    return kid
