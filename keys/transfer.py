"""Handing a linkage secret from the municipality to one creditor.

The municipality signs the secret and encrypts it to the creditor's own encryption key
(a nested JWT, like the envelope); the gateway may carry it but can never open it.
"""

from __future__ import annotations

from collections.abc import Sequence

from joserfc import jwe
from joserfc.errors import JoseError

from keys.envelope import ENVELOPE_CTY, encrypt_jwt
from keys.errors import KeyringError, SecretInvalid
from keys.jose import JWE_REGISTRY, HeaderError, check_jwe_header, compact_parts, parse_header
from keys.jwk import PrivateKey, PublicKey
from keys.signed import sign_document, verify_document
from keys.tokens import LinkageSecret

SECRET_TYP = "linkage-secret+json"  # noqa: S105 (a media type, not a secret)


def seal_secret(secret: LinkageSecret, *, signer: PrivateKey, recipient: PublicKey) -> str:
    """Sign the secret as the municipality and encrypt it to one creditor."""
    return encrypt_jwt(sign_document(secret.to_dict(), typ=SECRET_TYP, signer=signer), recipient)


def open_secret(
    token: str, *, keys: Sequence[PrivateKey], issuer_keys: Sequence[PublicKey]
) -> LinkageSecret:
    """Decrypt with one of our keys and verify the municipality's signature."""
    try:
        header = parse_header(compact_parts(token, 5)[0])
        check_jwe_header(header)
    except HeaderError as exc:
        raise SecretInvalid("sealed secret header refused", cause=exc.cause) from None
    key = next((k for k in keys if k.kid == header["kid"] and k.use == "enc"), None)
    if key is None or header.get("cty") != ENVELOPE_CTY:
        raise SecretInvalid("sealed secret is not for us", cause="wrong_recipient")
    try:
        inner = jwe.decrypt_compact(token, key.jose, registry=JWE_REGISTRY).plaintext
    except (JoseError, ValueError) as exc:
        raise SecretInvalid("sealed secret does not decrypt", cause="decrypt_failed") from exc
    doc = verify_document(
        (inner or b"").decode("ascii", "replace"),
        typ=SECRET_TYP,
        keys=issuer_keys,
        error=SecretInvalid,
    )
    try:
        return LinkageSecret.from_dict(doc)
    except (KeyError, TypeError, ValueError, KeyringError, SecretInvalid) as exc:
        raise SecretInvalid("sealed secret is malformed", cause="malformed") from exc
