"""The profile's two algorithms for opening, on ``cryptography``'s primitives (RFC 7518).

The gateway opens every envelope, so this is its hot path: ECDH-ES+A256KW with A256GCM
(section 4.6 with the Concat KDF, section 4.4 key unwrap, section 5.3) and ES256
(section 3.4). Headers are checked by ``keys.jose`` before anything here runs; sealing
still goes through joserfc, and the test vectors hold the two to one another.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from keys.jose import KEY_ALG, b64d
from keys.jwk import PrivateKey, PublicKey

_COORDINATE_BYTES = 32
_WRAPPED_CEK_BYTES = 40
_IV_BYTES = 12
_TAG_BYTES = 16
# AlgorithmID, empty PartyUInfo and PartyVInfo (apu/apv are not in the profile),
# SuppPubInfo = key length in bits.
_OTHER_INFO = (
    struct.pack(">I", len(KEY_ALG))
    + KEY_ALG.encode()
    + struct.pack(">I", 0)
    + struct.pack(">I", 0)
    + struct.pack(">I", 256)
)


class OpenFailed(ValueError):
    """The ciphertext or the signature does not check out."""


def decrypt_compact(parts: list[str], epk: dict[str, str], key: PrivateKey) -> bytes:
    """Decrypt a checked JWE compact serialization (its five parts) with ``key``."""
    try:
        x, y = b64d(epk["x"]), b64d(epk["y"])
        encrypted_key, iv = b64d(parts[1]), b64d(parts[2])
        ciphertext, tag = b64d(parts[3]), b64d(parts[4])
    except (KeyError, ValueError) as exc:
        raise OpenFailed("malformed parts") from exc
    if len(x) != _COORDINATE_BYTES or len(y) != _COORDINATE_BYTES:
        raise OpenFailed("epk is not a P-256 point")
    if len(encrypted_key) != _WRAPPED_CEK_BYTES or len(iv) != _IV_BYTES or len(tag) != _TAG_BYTES:
        raise OpenFailed("wrong part lengths")
    try:
        # public_key() refuses a point that is not on the curve.
        ephemeral = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
        private = key.jose.raw_value
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise OpenFailed("an intake key must be private")
        shared = private.exchange(ec.ECDH(), ephemeral)
        kek = ConcatKDFHash(hashes.SHA256(), 32, otherinfo=_OTHER_INFO).derive(shared)
        cek = aes_key_unwrap(kek, encrypted_key)
        return AESGCM(cek).decrypt(iv, ciphertext + tag, parts[0].encode("ascii"))
    except (ValueError, InvalidUnwrap, InvalidTag) as exc:
        raise OpenFailed("does not decrypt") from exc


def verify_es256(signing_input: bytes, signature: bytes, key: PublicKey) -> None:
    """Verify a JWS ES256 signature (r || s, 64 bytes) over ``signing_input``."""
    if len(signature) != 2 * _COORDINATE_BYTES:
        raise OpenFailed("an ES256 signature is 64 bytes")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    public = key.jose.raw_value
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise OpenFailed("a signer key must be public")
    try:
        public.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise OpenFailed("signature does not verify") from exc
