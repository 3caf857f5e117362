"""Known-answer test vectors for docs/envelope.md: envelope, contact block, receipt.

    .venv/bin/python -m tests.vectors.generate          # write the vectors
    .venv/bin/python -m tests.vectors.generate --check  # exit 1 when a file is stale

One case per file, ``tests/vectors/<kind>/<step>-<name>.json``, where ``<step>`` is the
number of the check in docs/envelope.md that decides the case (``00`` for cases that
pass every check), so a directory listing reads in the gateway's check order::

    {"description", "now", "sender", "audience", <context>, "input", "expected"}

``expected`` is ``{"outcome": "ok", ...}`` or ``{"outcome": "error", "code", "cause"}``.

The JOSE objects are assembled here by hand with ``cryptography``, not with ``keys``, so
the vectors check the implementation rather than repeat it, and so that objects ``keys``
would never produce can be written at all. Generation is deterministic: signatures are
RFC 6979 ECDSA, and ephemeral keys, content keys and IVs come from SHAKE-256 over the
case's name, so regenerating with the same keys rewrites the same bytes (and
``tests/keys/test_vectors.py`` checks that the committed files are current).

The keys are read from ``test-keys.json``, which the first run creates and which is then
committed: published test keys, never to be used for anything real.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from keys.jose import b64d, b64e, canonical
from keys.jwk import PrivateKey, Use

HERE = Path(__file__).resolve().parent
KEYS_FILE = HERE / "test-keys.json"
KINDS = ("envelope", "contact", "receipt")
WARNING = "TEST KEYS ONLY - published, never use them for anything real"

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T = int(NOW.timestamp())
DAY = 86_400
SKEW = 300
GATEWAY_ID = "signaalpoort-test"
CREDITOR_A = "00000003123456780000"
CREDITOR_B = "00000003876543210000"
GEMEENTE = "0363"
LINKAGE_KID = "lk-20260101-0a1b2c3d"

SIG_ALG, KEY_ALG, ENC_ALG = "ES256", "ECDH-ES+A256KW", "A256GCM"
NOTICE_TYP, RECEIPT_TYP = "notice+jwt", "receipt+jwt"
CONTACT_CTY = "contact+json"

KEY_ROLES: dict[str, tuple[Use, str]] = {
    "creditor_a": ("sig", "creditor A's signing key (A is the sender of every envelope case)"),
    "creditor_b": ("sig", "creditor B's signing key (registered, to another OIN)"),
    "stranger": ("sig", "a signing key registered to nobody"),
    "gateway_intake": ("enc", "the gateway's intake encryption key"),
    "gateway_signing": ("sig", "the gateway's signing key (receipts)"),
    "other_enc": ("enc", "an encryption key that is not the gateway's"),
    "team_a": ("enc", "outreach team A's encryption key"),
    "team_b": ("enc", "outreach team B's encryption key"),
    "municipality": ("sig", "the municipality's signing key (outreach key set)"),
}

Keys = dict[str, PrivateKey]

CONTACT = {
    "voorletters": "J.P.",
    "voorvoegsel": "van der",
    "achternaam": "Berg",
    "geboortedatum": "1980-05-17",
    "straatnaam": "Voorbeeldstraat",
    "huisnummer": "12",
    "huisletter": "A",
    "huisnummertoevoeging": "2",
    "postcode": "1011AB",
    "plaatsnaam": "Amsterdam",
    "telefoon": "+31200000000",
    "email": "j.vanderberg@example.org",
    "klantnummer": "K-000123",
}

_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_DROP = object()


# --- keys ---------------------------------------------------------------------------------


def load_keys(path: Path = KEYS_FILE, *, create: bool = True) -> Keys:
    """The fixed test keys; missing ones are generated (and the file rewritten) if ``create``."""
    if path.exists():
        doc = json.loads(path.read_text(encoding="utf-8"))
    elif create:
        doc = {"warning": WARNING, "keys": {}}
    else:
        raise FileNotFoundError(path)
    missing = [name for name in KEY_ROLES if name not in doc["keys"]]
    if missing:
        if not create:
            raise KeyError(f"test keys missing: {missing}")
        for name in missing:
            use, description = KEY_ROLES[name]
            jwk = PrivateKey.generate(use).to_jwk()
            doc["keys"][name] = {"description": description, "jwk": jwk}
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return {name: PrivateKey.from_jwk(doc["keys"][name]["jwk"]) for name in KEY_ROLES}


def _private(key: PrivateKey) -> ec.EllipticCurvePrivateKey:
    d = int.from_bytes(b64d(key.to_jwk()["d"]), "big")
    return ec.derive_private_key(d, ec.SECP256R1())


def _public(key: PrivateKey) -> ec.EllipticCurvePublicKey:
    return _private(key).public_key()


def epk_jwk(public: ec.EllipticCurvePublicKey) -> dict[str, str]:
    n = public.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64e(n.x.to_bytes(32, "big")),
        "y": b64e(n.y.to_bytes(32, "big")),
    }


class Det:
    """Deterministic bytes for one case: SHAKE-256 over the case's label and a counter."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._count = 0

    def bytes(self, n: int) -> bytes:
        self._count += 1
        return hashlib.shake_256(f"{self._label}#{self._count}".encode()).digest(n)

    def ec_key(self) -> ec.EllipticCurvePrivateKey:
        d = int.from_bytes(self.bytes(40), "big") % (_P256_ORDER - 1) + 1
        return ec.derive_private_key(d, ec.SECP256R1())

    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.bytes(16), version=4))


# --- hand-built JOSE ----------------------------------------------------------------------


def es256(key: PrivateKey, data: bytes) -> bytes:
    """An RFC 6979 (deterministic) ES256 signature, r || s, 64 bytes."""
    der = _private(key).sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def jws(header: dict[str, Any] | bytes, payload: bytes, signer: PrivateKey) -> str:
    """A compact JWS signed with ES256 (whatever the header claims)."""
    h = b64e(header if isinstance(header, bytes) else canonical(header))
    signing_input = f"{h}.{b64e(payload)}"
    return f"{signing_input}.{b64e(es256(signer, signing_input.encode()))}"


def _kek(shared: bytes, alg: str = KEY_ALG) -> bytes:
    """RFC 7518 section 4.6.2: Concat KDF with empty apu and apv, 256-bit key."""

    def lp(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    other = lp(alg.encode()) + lp(b"") + lp(b"") + (256).to_bytes(4, "big")
    return ConcatKDFHash(hashes.SHA256(), 32, other).derive(shared)


Tweak = Callable[[dict[str, Any]], dict[str, Any] | bytes]


def jwe(
    header: dict[str, Any],
    plaintext: bytes,
    to: PrivateKey,
    det: Det,
    *,
    tweak: Tweak | None = None,
) -> str:
    """A compact JWE, ECDH-ES+A256KW + A256GCM to ``to``; ``tweak`` may rewrite the header
    (after ``epk`` is added) or replace it with raw bytes."""
    eph = det.ec_key()
    full: dict[str, Any] | bytes = {**header, "epk": epk_jwk(eph.public_key())}
    if tweak is not None:
        full = tweak(dict(full))
    h = b64e(full if isinstance(full, bytes) else canonical(full))
    cek, iv = det.bytes(32), det.bytes(12)
    ek = keywrap.aes_key_wrap(_kek(eph.exchange(ec.ECDH(), _public(to))), cek)
    sealed = AESGCM(cek).encrypt(iv, plaintext, h.encode("ascii"))
    return ".".join((h, b64e(ek), b64e(iv), b64e(sealed[:-16]), b64e(sealed[-16:])))


def jwe_general(
    protected: dict[str, Any] | bytes, plaintext: bytes, to: list[PrivateKey], det: Det
) -> dict[str, Any]:
    """A JWE in general JSON serialization with one recipient per key in ``to``."""
    cek, iv = det.bytes(32), det.bytes(12)
    p = b64e(protected if isinstance(protected, bytes) else canonical(protected))
    sealed = AESGCM(cek).encrypt(iv, plaintext, p.encode("ascii"))
    recipients = []
    for key in to:
        eph = det.ec_key()
        ek = keywrap.aes_key_wrap(_kek(eph.exchange(ec.ECDH(), _public(key))), cek)
        header = {"alg": KEY_ALG, "kid": key.kid, "epk": epk_jwk(eph.public_key())}
        recipients.append({"header": header, "encrypted_key": b64e(ek)})
    return {
        "protected": p,
        "recipients": recipients,
        "iv": b64e(iv),
        "ciphertext": b64e(sealed[:-16]),
        "tag": b64e(sealed[-16:]),
    }


def flip_bit(part: str, byte: int = -1, bit: int = 0) -> str:
    """The base64url part with one bit of its decoded bytes flipped (still canonical)."""
    data = bytearray(b64d(part))
    data[byte] ^= 1 << bit
    return b64e(bytes(data))


def replace_part(token: str, index: int, part: str) -> str:
    parts = token.split(".")
    parts[index] = part
    return ".".join(parts)


# --- the notice ---------------------------------------------------------------------------


def notice_jti(iss: str, ref: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:signaalpoort:notice:{iss}:{ref}"))


def contact_block(k: Keys, det: Det, jti: str, contact: dict[str, Any] = CONTACT) -> dict[str, Any]:
    protected = {"enc": ENC_ALG, "cty": CONTACT_CTY, "jti": jti}
    return jwe_general(protected, canonical(contact), [k["team_a"], k["team_b"]], det)


def notice(
    k: Keys, det: Det, *, iss: str = CREDITOR_A, ref: str = "HUUR-2026-000123", **changes: Any
) -> dict[str, Any]:
    """A complete, valid notice; ``changes`` replace members (``_DROP`` removes one)."""
    jti = notice_jti(iss, ref)
    claims: dict[str, Any] = {
        "v": 1,
        "iss": iss,
        "aud": GATEWAY_ID,
        "gemeente": GEMEENTE,
        "jti": jti,
        "iat": T - 120,
        "exp": T - 120 + 14 * DAY,
        "ref": ref,
        "category": "HUUR",
        "stage": "aanmaning",
        "bedrag": "1432.17",
        "ontstaansdatum": "2025-11-01",
        "signaaldatum": "2026-03-01",
        "crisissignaal": False,
        "warmeOverdracht": True,
        "signaalpartner": "Woonstichting Voorbeeld",
        "attestations": {
            "persoonlijkContact": "2026-02-10",
            "schriftelijkeHerinnering": "2026-01-20",
            "gewezenOpSchuldhulp": True,
            "geenBezwaarDoorgifte": True,
        },
        "tokens": {
            "kid": LINKAGE_KID,
            "values": {
                t: [b64e(det.bytes(16))]
                for t in ("naam_init_geb", "pc_hnr_geb", "naam_pc_hnr", "fon_init_geb")
            },
        },
        "contact": contact_block(k, det, jti),
    }
    for name, value in changes.items():
        if value is _DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def minimal_notice(k: Keys, det: Det) -> dict[str, Any]:
    """Only the required members: a drinking-water signal at the early stage."""
    ref = "DW.2026-03.0042"
    jti = notice_jti(CREDITOR_A, ref)
    return {
        "v": 1,
        "iss": CREDITOR_A,
        "aud": GATEWAY_ID,
        "gemeente": GEMEENTE,
        "jti": jti,
        "iat": T,
        "exp": T + 7 * DAY,
        "ref": ref,
        "category": "DRINKWATER",
        "stage": "vroeg",
        "bedrag": "86.40",
        "ontstaansdatum": "2026-01-15",
        "signaaldatum": "2026-03-02",
        "tokens": {"kid": LINKAGE_KID, "values": {"pc_hnr_geb": [b64e(det.bytes(16))]}},
        "contact": contact_block(k, det, jti, {"achternaam": "Jansen", "postcode": "1011AB"}),
    }


def inner_header(key: PrivateKey, **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": SIG_ALG, "kid": key.kid, "typ": NOTICE_TYP}
    for name, value in changes.items():
        if value is _DROP:
            header.pop(name, None)
        else:
            header[name] = value
    return header


def outer_header(k: Keys, to: str = "gateway_intake", **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": KEY_ALG, "enc": ENC_ALG, "kid": k[to].kid, "cty": "JWT"}
    for name, value in changes.items():
        if value is _DROP:
            header.pop(name, None)
        else:
            header[name] = value
    return header


def sign_notice(k: Keys, claims: Any, signer: str = "creditor_a", **header: Any) -> str:
    return jws(inner_header(k[signer], **header), canonical(claims), k[signer])


def seal(
    k: Keys,
    det: Det,
    inner: str | bytes,
    *,
    to: str = "gateway_intake",
    tweak: Tweak | None = None,
    **header: Any,
) -> str:
    plaintext = inner.encode("ascii") if isinstance(inner, str) else inner
    return jwe(outer_header(k, **header), plaintext, k[to], det, tweak=tweak)


# --- cases --------------------------------------------------------------------------------


@dataclass
class Case:
    """One vector file."""

    kind: str
    name: str
    description: str
    input: Any
    expected: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return HERE / self.kind / f"{self.name}.json"

    def document(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "now": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sender": CREDITOR_A,
            "audience": GATEWAY_ID,
            **self.context,
            "input": self.input,
            "expected": self.expected,
        }


def error(code: str, cause: str) -> dict[str, Any]:
    return {"outcome": "error", "code": code, "cause": cause}


Built = str | tuple[str, dict[str, Any]]
_ENVELOPE: list[tuple[str, str, str | None, tuple[str, ...], Callable[[Keys, Det], Built]]] = []


def envelope_case(
    name: str, description: str, cause: str | None = None, *, revoked: tuple[str, ...] = ()
) -> Callable[[Callable[[Keys, Det], Built]], Callable[[Keys, Det], Built]]:
    """Register an envelope case; an ok case returns ``(envelope, claims)``."""

    def register(build: Callable[[Keys, Det], Built]) -> Callable[[Keys, Det], Built]:
        _ENVELOPE.append((name, description, cause, revoked, build))
        return build

    return register


# 00: valid envelopes, and the edges of the time window that still pass.


@envelope_case("00-valid", "A complete notice by creditor A, encrypted to the gateway.")
def _valid(k: Keys, det: Det) -> Built:
    claims = notice(k, det)
    return seal(k, det, sign_notice(k, claims)), claims


@envelope_case("00-valid-minimal", "A notice with only the required members.")
def _valid_minimal(k: Keys, det: Det) -> Built:
    claims = minimal_notice(k, det)
    return seal(k, det, sign_notice(k, claims)), claims


@envelope_case(
    "00-valid-eviction",
    "An eviction (stage ontruiming, with stageDate), marked as a crisis signal.",
)
def _valid_eviction(k: Keys, det: Det) -> Built:
    claims = notice(
        k,
        det,
        ref="HUUR-2026-000124",
        stage="ontruiming",
        stageDate="2026-03-20",
        crisissignaal=True,
    )
    return seal(k, det, sign_notice(k, claims)), claims


@envelope_case(
    "00-valid-expired-within-skew", "exp passed 4 minutes ago: within the 5-minute skew."
)
def _valid_skew_exp(k: Keys, det: Det) -> Built:
    claims = notice(k, det, iat=T - 10 * DAY, exp=T - 240)
    return seal(k, det, sign_notice(k, claims)), claims


@envelope_case("00-valid-iat-at-skew", "iat is exactly 5 minutes ahead of the gateway's clock.")
def _valid_skew_iat(k: Keys, det: Det) -> Built:
    claims = notice(k, det, iat=T + SKEW, exp=T + SKEW + DAY)
    return seal(k, det, sign_notice(k, claims)), claims


@envelope_case("00-valid-lifetime-31-days", "exp - iat is exactly 31 days.")
def _valid_lifetime(k: Keys, det: Det) -> Built:
    claims = notice(k, det, iat=T, exp=T + 31 * DAY)
    return seal(k, det, sign_notice(k, claims)), claims


@envelope_case(
    "00-valid-pretty-printed-payload",
    "The signed payload is pretty-printed, keys unsorted: not canonical JSON, still valid "
    "(the signature covers the bytes as sent; replay is judged on these bytes).",
)
def _valid_pretty(k: Keys, det: Det) -> Built:
    claims = notice(k, det, ref="HUUR-2026-000125")
    payload = json.dumps(dict(reversed(list(claims.items()))), indent=2).encode()
    return seal(k, det, jws(inner_header(k["creditor_a"]), payload, k["creditor_a"])), claims


@envelope_case(
    "00-valid-typ-on-envelope",
    "The JWE header also carries typ: JWT, as Microsoft.IdentityModel always writes it: "
    "allowed, and ignored.",
)
def _valid_outer_typ(k: Keys, det: Det) -> Built:
    claims = notice(k, det, ref="HUUR-2026-000126")
    return seal(k, det, sign_notice(k, claims), typ="JWT"), claims


# 01: size.


@envelope_case("01-oversized", "A real envelope of more than 65,536 bytes.", "oversized")
def _oversized(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, padding="x" * 36_000)))


# 02: the compact serialization and its header.


@envelope_case("02-not-ascii", "A non-ASCII character inside the ciphertext part.", "malformed")
def _not_ascii(k: Keys, det: Det) -> Built:
    env = seal(k, det, sign_notice(k, notice(k, det)))
    parts = env.split(".")
    return replace_part(env, 3, parts[3][:10] + "\u00e9" + parts[3][11:])


@envelope_case("02-four-parts", "The authentication tag part is missing (4 parts).", "malformed")
def _four_parts(k: Keys, det: Det) -> Built:
    return ".".join(seal(k, det, sign_notice(k, notice(k, det))).split(".")[:4])


@envelope_case("02-six-parts", "An extra sixth part.", "malformed")
def _six_parts(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det))) + ".AAAA"


@envelope_case("02-json-serialization", "A JWE in flattened JSON serialization.", "malformed")
def _json_serialization(k: Keys, det: Det) -> Built:
    h, ek, iv, ct, tag = seal(k, det, sign_notice(k, notice(k, det))).split(".")
    flat = {"protected": h, "encrypted_key": ek, "iv": iv, "ciphertext": ct, "tag": tag}
    return json.dumps(flat, separators=(",", ":"))


@envelope_case(
    "02-header-bad-base64",
    "The protected header part contains '*', outside the base64url alphabet.",
    "malformed",
)
def _header_bad_base64(k: Keys, det: Det) -> Built:
    env = seal(k, det, sign_notice(k, notice(k, det)))
    h = env.split(".")[0]
    return replace_part(env, 0, h[:8] + "*" + h[9:])


@envelope_case("02-header-padded", "The protected header part carries '=' padding.", "malformed")
def _header_padded(k: Keys, det: Det) -> Built:
    def pad(header: dict[str, Any]) -> bytes:
        raw = canonical(header)
        return raw + b" " * ((1 - len(raw)) % 3)  # length = 1 mod 3: needs "=="

    env = seal(k, det, sign_notice(k, notice(k, det)), tweak=pad)
    h = env.split(".")[0]
    return replace_part(env, 0, h + "=" * (-len(h) % 4))


@envelope_case(
    "02-header-non-canonical-base64",
    "The last character of the header part has non-zero trailing bits (non-canonical).",
    "malformed",
)
def _header_non_canonical(k: Keys, det: Det) -> Built:
    def one_over(header: dict[str, Any]) -> bytes:
        raw = canonical(header)
        return raw + b" " * ((1 - len(raw)) % 3)  # length = 1 mod 3: 4 spare bits

    env = seal(k, det, sign_notice(k, notice(k, det)), tweak=one_over)
    h = env.split(".")[0]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return replace_part(env, 0, h[:-1] + alphabet[alphabet.index(h[-1]) + 1])


@envelope_case("02-header-not-json", "The protected header decodes to 'not json'.", "malformed")
def _header_not_json(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), tweak=lambda h: b"not json")


@envelope_case("02-header-array", "The protected header is a JSON array.", "malformed")
def _header_array(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), tweak=lambda h: canonical(list(h)))


@envelope_case(
    "02-header-duplicate-member",
    "The protected header names 'alg' twice (the second is the profile's).",
    "malformed",
)
def _header_duplicate(k: Keys, det: Det) -> Built:
    def twice(header: dict[str, Any]) -> bytes:
        return b'{"alg":"RSA-OAEP",' + canonical(header)[1:]

    return seal(k, det, sign_notice(k, notice(k, det)), tweak=twice)


# 03: the protected header's members.


@envelope_case("03-zip-def", "The header asks for DEFLATE compression (zip: DEF).", "zip_forbidden")
def _zip(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), zip="DEF")


@envelope_case(
    "03-crit-present", "The header lists a critical extension (crit: [exp]).", "crit_unsupported"
)
def _crit(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), crit=["exp"], exp=T + DAY)


@envelope_case(
    "03-zip-before-alg",
    "zip and alg none together: zip is checked first.",
    "zip_forbidden",
)
def _zip_first(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), zip="DEF", alg="none")


@envelope_case("03-alg-none", "alg: none.", "alg_forbidden")
def _alg_none(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), alg="none")


@envelope_case("03-alg-rsa-oaep", "alg: RSA-OAEP.", "alg_forbidden")
def _alg_rsa(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), alg="RSA-OAEP")


@envelope_case("03-alg-ecdh-es-direct", "alg: ECDH-ES (direct key agreement).", "alg_forbidden")
def _alg_direct(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), alg="ECDH-ES")


@envelope_case("03-alg-missing", "The header has no alg.", "alg_forbidden")
def _alg_missing(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), alg=_DROP)


@envelope_case("03-enc-a128gcm", "enc: A128GCM.", "alg_forbidden")
def _enc_128(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), enc="A128GCM")


@envelope_case("03-enc-cbc-hs512", "enc: A256CBC-HS512.", "alg_forbidden")
def _enc_cbc(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), enc="A256CBC-HS512")


@envelope_case("03-unknown-member-jku", "The header carries jku (a key URL).", "header_invalid")
def _jku(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), jku="https://attacker.example/jwks.json")


@envelope_case("03-unknown-member-jwk", "The header embeds a key (jwk member).", "header_invalid")
def _jwk_member(k: Keys, det: Det) -> Built:
    embedded = k["other_enc"].public().jwk
    return seal(k, det, sign_notice(k, notice(k, det)), jwk=embedded)


@envelope_case("03-cty-not-string", "cty is the number 1.", "header_invalid")
def _cty_number(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), cty=1)


@envelope_case("03-kid-missing", "The header has no kid.", "header_invalid")
def _kid_missing(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), kid=_DROP)


@envelope_case("03-kid-not-string", "kid is a JSON array.", "header_invalid")
def _kid_array(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), kid=[k["gateway_intake"].kid])


@envelope_case("03-epk-missing", "The header has no epk.", "header_invalid")
def _epk_missing(k: Keys, det: Det) -> Built:
    def without_epk(header: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in header.items() if name != "epk"}

    return seal(k, det, sign_notice(k, notice(k, det)), tweak=without_epk)


@envelope_case(
    "03-epk-private-member", "The ephemeral key carries its private member d.", "header_invalid"
)
def _epk_private(k: Keys, det: Det) -> Built:
    def with_d(header: dict[str, Any]) -> dict[str, Any]:
        return {**header, "epk": {**header["epk"], "d": b64e(det.bytes(32))}}

    return seal(k, det, sign_notice(k, notice(k, det)), tweak=with_d)


@envelope_case("03-epk-p384", "The ephemeral key claims curve P-384.", "header_invalid")
def _epk_curve(k: Keys, det: Det) -> Built:
    def p384(header: dict[str, Any]) -> dict[str, Any]:
        return {**header, "epk": {**header["epk"], "crv": "P-384"}}

    return seal(k, det, sign_notice(k, notice(k, det)), tweak=p384)


# 04 and 05: the recipient and the content type.


@envelope_case(
    "04-wrong-recipient", "Encrypted to a key that is not the gateway's.", "wrong_recipient"
)
def _wrong_recipient(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), to="other_enc", kid=k["other_enc"].kid)


@envelope_case(
    "04-wrong-recipient-before-cty",
    "Not for the gateway and without cty: the recipient is checked first.",
    "wrong_recipient",
)
def _recipient_first(k: Keys, det: Det) -> Built:
    inner = sign_notice(k, notice(k, det))
    return seal(k, det, inner, to="other_enc", kid=k["other_enc"].kid, cty=_DROP)


@envelope_case("05-cty-missing", "The header has no cty.", "content_type_invalid")
def _cty_missing(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), cty=_DROP)


@envelope_case("05-cty-lowercase", "cty: jwt (the profile wants JWT).", "content_type_invalid")
def _cty_lower(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)), cty="jwt")


# 06: decryption.


@envelope_case(
    "06-ciphertext-bit-flipped",
    "One bit of the ciphertext flipped (still canonical base64url).",
    "decrypt_failed",
)
def _ct_flip(k: Keys, det: Det) -> Built:
    env = seal(k, det, sign_notice(k, notice(k, det)))
    return replace_part(env, 3, flip_bit(env.split(".")[3], 100, 3))


@envelope_case("06-tag-truncated", "The authentication tag is 15 bytes.", "decrypt_failed")
def _tag_short(k: Keys, det: Det) -> Built:
    env = seal(k, det, sign_notice(k, notice(k, det)))
    return replace_part(env, 4, b64e(b64d(env.split(".")[4])[:15]))


@envelope_case(
    "02-encrypted-key-non-canonical",
    "The encrypted key part ends in a character with non-zero trailing bits.",
    "malformed",
)
def _ek_non_canonical(k: Keys, det: Det) -> Built:
    env = seal(k, det, sign_notice(k, notice(k, det)))
    ek = env.split(".")[1]  # 40 bytes: 54 characters, the last carries 4 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return replace_part(env, 1, ek[:-1] + alphabet[alphabet.index(ek[-1]) | 1])


@envelope_case(
    "06-epk-not-on-curve",
    "The ephemeral public key is not a point on P-256 (invalid-curve attack).",
    "decrypt_failed",
)
def _epk_off_curve(k: Keys, det: Det) -> Built:
    def off(header: dict[str, Any]) -> dict[str, Any]:
        x = b64e((5).to_bytes(32, "big"))
        return {**header, "epk": {**header["epk"], "x": x}}

    return seal(k, det, sign_notice(k, notice(k, det)), tweak=off)


# 07 and 08: the nested JWS and its header.


@envelope_case(
    "07-inner-plain-json",
    "The encrypted content is the notice as plain JSON, not a JWS.",
    "signature_missing",
)
def _inner_json(k: Keys, det: Det) -> Built:
    return seal(k, det, canonical(notice(k, det)))


@envelope_case(
    "07-inner-empty-signature",
    "The encrypted content is a JWS whose signature part is empty.",
    "signature_missing",
)
def _inner_unsigned(k: Keys, det: Det) -> Built:
    signed = sign_notice(k, notice(k, det))
    return seal(k, det, signed.rsplit(".", 1)[0] + ".")


@envelope_case("07-inner-not-ascii", "The encrypted content is not ASCII.", "signature_missing")
def _inner_binary(k: Keys, det: Det) -> Built:
    return seal(k, det, "caf\u00e9.\u00e9.\u00e9".encode())


@envelope_case("08-inner-header-not-json", "The JWS header decodes to 'not json'.", "malformed")
def _inner_header_not_json(k: Keys, det: Det) -> Built:
    return seal(k, det, jws(b"not json", canonical(notice(k, det)), k["creditor_a"]))


@envelope_case("08-inner-zip", "The JWS header has zip.", "zip_forbidden")
def _inner_zip(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), zip="DEF"))


@envelope_case("08-inner-crit", "The JWS header has crit: [b64].", "crit_unsupported")
def _inner_crit(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), crit=["b64"], b64=False))


@envelope_case("08-inner-alg-none", "The JWS header says alg none.", "alg_forbidden")
def _inner_none(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), alg="none"))


@envelope_case(
    "08-inner-alg-hs256",
    "The JWS is HS256, keyed with the creditor's public key (algorithm confusion).",
    "alg_forbidden",
)
def _inner_hs256(k: Keys, det: Det) -> Built:
    key = k["creditor_a"]
    h = b64e(canonical(inner_header(key, alg="HS256")))
    signing_input = f"{h}.{b64e(canonical(notice(k, det)))}"
    secret = canonical(key.public().jwk)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return seal(k, det, f"{signing_input}.{b64e(mac)}")


@envelope_case("08-inner-alg-es384", "The JWS header says alg ES384.", "alg_forbidden")
def _inner_es384(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), alg="ES384"))


@envelope_case("08-inner-b64-false", "The JWS header has b64: false.", "header_invalid")
def _inner_b64(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), b64=False))


@envelope_case(
    "08-inner-embedded-jwk",
    "The JWS header embeds the verification key (jwk).",
    "header_invalid",
)
def _inner_jwk(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), jwk=k["creditor_a"].public().jwk))


@envelope_case("08-inner-kid-missing", "The JWS header has no kid.", "header_invalid")
def _inner_kid(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), kid=_DROP))


@envelope_case("08-inner-typ-wrong", "The JWS typ is JWT, not notice+jwt.", "header_invalid")
def _inner_typ(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), typ="JWT"))


@envelope_case(
    "08-inner-typ-receipt",
    "The JWS typ is receipt+jwt: another document type.",
    "header_invalid",
)
def _inner_typ_receipt(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), typ=RECEIPT_TYP))


@envelope_case("08-inner-typ-missing", "The JWS header has no typ.", "header_invalid")
def _inner_typ_missing(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), typ=_DROP))


@envelope_case(
    "08-inner-signature-bad-base64", "The JWS signature part is not base64url.", "malformed"
)
def _inner_sig_b64(k: Keys, det: Det) -> Built:
    signed = sign_notice(k, notice(k, det))
    return seal(k, det, signed.rsplit(".", 1)[0] + ".c2lnbmF0dXJl+w")


# 09 to 12: the signer and the signature.


@envelope_case("09-key-unknown", "Signed by a key that is registered to nobody.", "key_unknown")
def _unknown_key(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), signer="stranger"))


@envelope_case(
    "10-key-revoked",
    "Signed by creditor A's key, which was revoked (see revoked_kids).",
    "key_revoked",
    revoked=("creditor_a",),
)
def _revoked(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det)))


@envelope_case(
    "10-key-revoked-before-signer-mismatch",
    "Signed by creditor B's revoked key: revocation is checked before the owner.",
    "key_revoked",
    revoked=("creditor_b",),
)
def _revoked_first(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iss=CREDITOR_B), signer="creditor_b"))


@envelope_case(
    "11-signer-is-another-creditor",
    "Signed by creditor B's (valid, registered) key but sent by creditor A.",
    "signer_mismatch",
)
def _other_creditor(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iss=CREDITOR_B), signer="creditor_b"))


@envelope_case(
    "12-signature-bit-flipped", "One bit of the ES256 signature flipped.", "signature_invalid"
)
def _bad_signature(k: Keys, det: Det) -> Built:
    signed = sign_notice(k, notice(k, det))
    head, sig = signed.rsplit(".", 1)
    return seal(k, det, f"{head}.{flip_bit(sig, 40, 0)}")


@envelope_case(
    "12-key-substitution",
    "Signed by an unregistered key whose header names creditor A's kid.",
    "signature_invalid",
)
def _substituted(k: Keys, det: Det) -> Built:
    header = inner_header(k["creditor_a"])
    return seal(k, det, jws(header, canonical(notice(k, det)), k["stranger"]))


@envelope_case(
    "08-inner-payload-bad-base64",
    "The JWS payload part is not base64url (though the signature over it verifies).",
    "malformed",
)
def _payload_b64(k: Keys, det: Det) -> Built:
    h = b64e(canonical(inner_header(k["creditor_a"])))
    signing_input = f"{h}.not*base64"
    sig = b64e(es256(k["creditor_a"], signing_input.encode()))
    return seal(k, det, f"{signing_input}.{sig}")


# 13 and 14: the payload.


def _signed_bytes(k: Keys, det: Det, payload: bytes) -> str:
    return seal(k, det, jws(inner_header(k["creditor_a"]), payload, k["creditor_a"]))


@envelope_case("13-payload-not-json", "The signed payload is 'not json'.", "payload_malformed")
def _payload_text(k: Keys, det: Det) -> Built:
    return _signed_bytes(k, det, b"not json")


@envelope_case("13-payload-array", "The signed payload is a JSON array.", "payload_malformed")
def _payload_array(k: Keys, det: Det) -> Built:
    return _signed_bytes(k, det, canonical([notice(k, det)]))


@envelope_case(
    "13-payload-duplicate-member",
    "The signed payload names jti twice (with two different values).",
    "payload_malformed",
)
def _payload_duplicate(k: Keys, det: Det) -> Built:
    raw = canonical(notice(k, det))
    other = notice_jti(CREDITOR_A, "HUUR-2026-999999")
    return _signed_bytes(k, det, b'{"jti":"' + other.encode() + b'",' + raw[1:])


@envelope_case(
    "13-payload-not-utf8", "The signed payload contains a Latin-1 byte.", "payload_malformed"
)
def _payload_latin1(k: Keys, det: Det) -> Built:
    raw = canonical(notice(k, det, signaalpartner="Woonstichting Voorbeeld"))
    return _signed_bytes(k, det, raw.replace(b"Voorbeeld", b"Voorbe\xebld"))


@envelope_case("14-iat-string", "iat is a string of digits.", "payload_malformed")
def _iat_string(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iat=str(T))))


@envelope_case("14-exp-fraction", "exp is 1772...0.5, not an integer.", "payload_malformed")
def _exp_float(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, exp=T + DAY + 0.5)))


@envelope_case("14-iat-boolean", "iat is true.", "payload_malformed")
def _iat_bool(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iat=True)))


@envelope_case("14-exp-missing", "The payload has no exp.", "payload_malformed")
def _exp_missing(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, exp=_DROP)))


# 15 to 19: the claims.


@envelope_case(
    "15-iss-not-sender",
    "Signed with creditor A's own key, but iss names creditor B.",
    "signer_mismatch",
)
def _iss(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iss=CREDITOR_B)))


@envelope_case("16-aud-wrong", "aud names another gateway.", "audience_mismatch")
def _aud(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, aud="signaalpoort-other")))


@envelope_case("16-aud-array", "aud is an array holding the gateway's id.", "audience_mismatch")
def _aud_array(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, aud=[GATEWAY_ID])))


@envelope_case(
    "16-aud-before-expiry",
    "aud wrong and expired: the audience is checked first.",
    "audience_mismatch",
)
def _aud_first(k: Keys, det: Det) -> Built:
    claims = notice(k, det, aud="signaalpoort-other", iat=T - 20 * DAY, exp=T - DAY)
    return seal(k, det, sign_notice(k, claims))


@envelope_case("17-expired", "exp passed 6 minutes ago.", "expired")
def _expired(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iat=T - 20 * DAY, exp=T - 360)))


@envelope_case("17-expired-at-skew", "exp is exactly 5 minutes before now: expired.", "expired")
def _expired_edge(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iat=T - 20 * DAY, exp=T - SKEW)))


@envelope_case("18-iat-in-future", "iat is 6 minutes ahead of now.", "not_yet_valid")
def _future(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iat=T + 360, exp=T + 360 + DAY)))


@envelope_case("19-lifetime-too-long", "exp - iat is 31 days and 1 second.", "lifetime_too_long")
def _lifetime(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iat=T, exp=T + 31 * DAY + 1)))


@envelope_case("19-exp-before-iat", "exp is 100 seconds before iat.", "lifetime_too_long")
def _exp_before_iat(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det, iat=T + 200, exp=T + 100)))


# Rules of docs/envelope.md that keys/ does not enforce yet (tests/keys/test_vectors.py
# lists them as known deviations, each with its proposed fix).


@envelope_case(
    "08-inner-cty-present",
    "The JWS header carries cty: json (not a profile member).",
    "header_invalid",
)
def _inner_cty(k: Keys, det: Det) -> Built:
    return seal(k, det, sign_notice(k, notice(k, det), cty="json"))


@envelope_case(
    "13-payload-utf16",
    "The signed payload is the notice in UTF-16 with a BOM.",
    "payload_malformed",
)
def _payload_utf16(k: Keys, det: Det) -> Built:
    text = json.dumps(notice(k, det), sort_keys=True, separators=(",", ":"))
    return _signed_bytes(k, det, text.encode("utf-16"))


@envelope_case(
    "13-payload-nan", "The signed payload holds the non-JSON literal NaN.", "payload_malformed"
)
def _payload_nan(k: Keys, det: Det) -> Built:
    raw = canonical(notice(k, det, bedrag="BEDRAG"))
    return _signed_bytes(k, det, raw.replace(b'"BEDRAG"', b"NaN"))


@envelope_case(
    "13-payload-lone-surrogate",
    "A string in the signed payload holds the escape \\ud800 (a lone surrogate).",
    "payload_malformed",
)
def _payload_surrogate(k: Keys, det: Det) -> Built:
    raw = canonical(notice(k, det, signaalpartner="SURROGATE"))
    return _signed_bytes(k, det, raw.replace(b"SURROGATE", b"\\ud800"))


def envelope_cases(k: Keys) -> list[Case]:
    signers = [
        {"kid": k["creditor_a"].kid, "owner": CREDITOR_A},
        {"kid": k["creditor_b"].kid, "owner": CREDITOR_B},
    ]
    cases = []
    for name, description, cause, revoked, build in _ENVELOPE:
        det = Det(f"envelope/{name}")
        built = build(k, det)
        context = {
            "intake_kids": [k["gateway_intake"].kid],
            "signers": signers,
            "revoked_kids": [k[r].kid for r in revoked],
        }
        if cause is None:
            assert isinstance(built, tuple)
            envelope, claims = built
            payload = b64d(_inner_payload_part(k, envelope))
            expected = {
                "outcome": "ok",
                "claims": claims,
                "payloadSha256": hashlib.sha256(payload).hexdigest(),
                "signerKid": k["creditor_a"].kid,
            }
        else:
            assert isinstance(built, str)
            envelope, expected = built, error("envelope_invalid", cause)
        cases.append(Case("envelope", name, description, envelope, expected, context))
    return cases


def _inner_payload_part(k: Keys, envelope: str) -> str:
    """The JWS payload part inside an envelope we built (decrypted by hand)."""
    h, ek, iv, ct, tag = envelope.split(".")
    header = json.loads(b64d(h))
    epk = header["epk"]
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64d(epk["x"]), "big"), int.from_bytes(b64d(epk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    kek = _kek(_private(k["gateway_intake"]).exchange(ec.ECDH(), public))
    cek = keywrap.aes_key_unwrap(kek, b64d(ek))
    inner = AESGCM(cek).decrypt(b64d(iv), b64d(ct) + b64d(tag), h.encode())
    return inner.decode("ascii").split(".")[1]


# --- contact blocks -------------------------------------------------------------------------


def contact_cases(k: Keys) -> list[Case]:
    jti = notice_jti(CREDITOR_A, "HUUR-2026-000123")
    team_a, team_b = k["team_a"], k["team_b"]
    both = [team_a.kid, team_b.kid]
    cases: list[Case] = []

    def add(
        name: str,
        description: str,
        block: Any,
        cause: str | None,
        *,
        opener: str = "team_a",
        contact: dict[str, Any] | None = None,
        recipients: list[str] | None = None,
    ) -> None:
        if cause is None:
            expected: dict[str, Any] = {
                "outcome": "ok",
                "recipients": recipients or both,
                "contact": contact if contact is not None else CONTACT,
            }
        else:
            expected = error("contact_block_invalid", cause)
        context = {"jti": jti, "keys": [k[opener].kid]}
        cases.append(Case("contact", name, description, block, expected, context))

    def fresh(name: str, contact: Any = CONTACT, protected: Any = None) -> dict[str, Any]:
        det = Det(f"contact/{name}")
        prot = protected or {"enc": ENC_ALG, "cty": CONTACT_CTY, "jti": jti}
        plaintext = contact if isinstance(contact, bytes) else canonical(contact)
        return jwe_general(prot, plaintext, [team_a, team_b], det)

    add("00-open-by-team-a", "Sealed to teams A and B; opened by A.", fresh("a"), None)
    add(
        "00-open-by-team-b",
        "Sealed to teams A and B; opened by B.",
        fresh("b"),
        None,
        opener="team_b",
    )
    stripped = fresh("stripped-a")
    stripped["recipients"] = stripped["recipients"][:1]
    add(
        "00-stripped-open-by-team-a",
        "Stripped by the gateway to team A, opened by A.",
        stripped,
        None,
        recipients=[team_a.kid],
    )
    few = {"achternaam": "Jansen", "telefoon": "+31200000001"}
    add("00-two-fields", "Only two contact fields.", fresh("few", few), None, contact=few)

    # 01-03: shape.
    block = fresh("unprotected")
    block["unprotected"] = {"cty": CONTACT_CTY}
    add("01-unprotected-member", "A shared unprotected header.", block, "malformed")
    block = fresh("aad")
    block["aad"] = b64e(b"extra")
    add("01-aad-member", "An aad member.", block, "malformed")
    block = fresh("no-tag")
    del block["tag"]
    add("01-tag-missing", "The tag member is missing.", block, "malformed")
    block = fresh("iv-number")
    block["iv"] = 12
    add("02-iv-not-string", "iv is a number.", block, "malformed")
    block = fresh("iv-padded")
    block["iv"] = block["iv"] + "=="
    add("02-iv-padded", "iv carries '=' padding.", block, "malformed")
    block = fresh("tag-non-canonical")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    block["tag"] = block["tag"][:-1] + alphabet[alphabet.index(block["tag"][-1]) | 1]
    add("02-tag-non-canonical", "The tag's last character has spare bits set.", block, "malformed")
    block = fresh("protected-not-json")
    block["protected"] = b64e(b"not json")
    add("03-protected-not-json", "The protected header is not JSON.", block, "malformed")

    # 04-06: the protected header.
    block = fresh("zip", protected={"enc": ENC_ALG, "cty": CONTACT_CTY, "jti": jti, "zip": "DEF"})
    add("04-protected-zip", "The protected header asks for zip.", block, "header_invalid")
    block = fresh("enc128", protected={"enc": "A128GCM", "cty": CONTACT_CTY, "jti": jti})
    add("04-protected-enc-a128gcm", "enc: A128GCM.", block, "header_invalid")
    block = fresh(
        "alg-shared", protected={"enc": ENC_ALG, "cty": CONTACT_CTY, "jti": jti, "alg": KEY_ALG}
    )
    add("04-protected-alg", "alg in the protected header.", block, "header_invalid")
    block = fresh("cty", protected={"enc": ENC_ALG, "cty": "json", "jti": jti})
    add("05-protected-cty-wrong", "cty: json.", block, "header_invalid")
    other = notice_jti(CREDITOR_A, "HUUR-2026-000999")
    block = fresh("other-notice", protected={"enc": ENC_ALG, "cty": CONTACT_CTY, "jti": other})
    add(
        "06-block-from-another-notice",
        "The block is bound to another notice's jti.",
        block,
        "wrong_notice",
    )

    # 07-09: recipients.
    block = fresh("no-recipients")
    block["recipients"] = []
    add("07-no-recipients", "recipients is empty.", block, "malformed")
    block = fresh("recipient-extra")
    block["recipients"][0]["header"]["jku"] = "https://attacker.example/jwks.json"
    add(
        "08-recipient-extra-member",
        "Team A's recipient header carries jku.",
        block,
        "header_invalid",
    )
    block = fresh("recipient-top-extra")
    block["recipients"][0]["extra"] = "x"
    add(
        "08-recipient-object-extra",
        "A recipient has a member besides header and encrypted_key.",
        block,
        "malformed",
    )
    block = fresh("recipient-rsa")
    block["recipients"][1]["header"]["alg"] = "RSA-OAEP"
    add("08-recipient-alg-rsa-oaep", "Team B's recipient says RSA-OAEP.", block, "alg_forbidden")
    block = fresh("recipient-no-kid")
    del block["recipients"][0]["header"]["kid"]
    add("08-recipient-kid-missing", "Team A's recipient has no kid.", block, "header_invalid")
    block = fresh("recipient-twice")
    block["recipients"].append(json.loads(json.dumps(block["recipients"][0])))
    add("09-recipient-twice", "Team A is listed twice.", block, "malformed")

    # 10-12: opening.
    stripped = fresh("stripped-b")
    stripped["recipients"] = stripped["recipients"][:1]
    add(
        "10-stripped-to-a-opened-by-b",
        "Stripped to team A, then opened by team B.",
        stripped,
        "not_a_recipient",
        opener="team_b",
    )
    block = fresh("reordered")
    header = json.loads(b64d(block["protected"]))
    reordered = dict(reversed(list(header.items())))
    block["protected"] = b64e(json.dumps(reordered, separators=(",", ":")).encode())
    add(
        "11-protected-reordered",
        "The protected header's members re-serialized in another order: the AAD (the "
        "protected member as received) no longer matches.",
        block,
        "decrypt_failed",
    )
    block = fresh("ct-flip")
    block["ciphertext"] = flip_bit(block["ciphertext"], 5, 2)
    add("11-ciphertext-bit-flipped", "One ciphertext bit flipped.", block, "decrypt_failed")
    block = fresh("ek-swap")
    block["recipients"][0]["encrypted_key"] = block["recipients"][1]["encrypted_key"]
    add(
        "11-encrypted-key-swapped",
        "Team A's entry carries team B's encrypted key.",
        block,
        "decrypt_failed",
    )
    add(
        "11-content-not-json",
        "The plaintext is not JSON.",
        fresh("not-json", b"Jansen, 1011AB"),
        "decrypt_failed",
    )
    add(
        "12-content-unknown-field",
        "The plaintext carries a bsn field.",
        fresh("bsn", {"achternaam": "Jansen", "bsn": "999999990"}),
        "malformed",
    )
    add(
        "12-content-not-string",
        "huisnummer is a number.",
        fresh("number", {"achternaam": "Jansen", "huisnummer": 12}),
        "malformed",
    )

    # Rules keys/ does not enforce yet (see tests/keys/test_vectors.py).
    block = fresh("whitespace")
    header = json.loads(b64d(block["protected"]))
    block["protected"] = b64e(json.dumps(header, indent=1).encode())
    add(
        "05-protected-not-compact",
        "The protected header re-serialized with whitespace (same members, same order): "
        "not the compact form a JOSE library re-encodes, so refused before decryption.",
        block,
        "header_invalid",
    )
    block = fresh("recipient-enc")
    block["recipients"][0]["header"]["enc"] = "A128GCM"
    add(
        "08-recipient-enc",
        "Team A's recipient header repeats enc (as A128GCM).",
        block,
        "header_invalid",
    )
    return cases


# --- receipts -------------------------------------------------------------------------------


def receipt_cases(k: Keys, envelopes: dict[str, str]) -> list[Case]:
    gateway = k["gateway_signing"]
    cases: list[Case] = []

    def sha(name: str) -> str:
        return hashlib.sha256(envelopes[name].encode("ascii")).hexdigest()

    valid_jti = notice_jti(CREDITOR_A, "HUUR-2026-000123")

    def body(name: str, **changes: Any) -> dict[str, Any]:
        det = Det(f"receipt/{name}")
        doc: dict[str, Any] = {
            "iss": GATEWAY_ID,
            "aud": CREDITOR_A,
            "id": det.uuid(),
            "iat": T,
            "intake": "sftp",
            "source": "notices-2026-03.jsonl",
            "items": [
                {
                    "position": 0,
                    "envelopeSha256": sha("00-valid"),
                    "jti": valid_jti,
                    "outcome": "accepted",
                    "reason": None,
                },
                {
                    "position": 1,
                    "envelopeSha256": sha("00-valid"),
                    "jti": valid_jti,
                    "outcome": "duplicate",
                    "reason": None,
                },
                {
                    "position": 2,
                    "envelopeSha256": sha("02-four-parts"),
                    "jti": None,
                    "outcome": "refused",
                    "reason": "envelope_invalid",
                },
            ],
        }
        for name_, value in changes.items():
            if value is _DROP:
                doc.pop(name_, None)
            else:
                doc[name_] = value
        return doc

    def header(**changes: Any) -> dict[str, Any]:
        h: dict[str, Any] = {"alg": SIG_ALG, "kid": gateway.kid, "typ": RECEIPT_TYP}
        h.update(changes)
        return h

    def add(name: str, description: str, token: str, cause: str | None, doc: Any = None) -> None:
        if cause is None:
            expected: dict[str, Any] = {"outcome": "ok", "receipt": doc}
        else:
            expected = error("receipt_invalid", cause)
        context = {"gateway_kids": [gateway.kid]}
        cases.append(Case("receipt", name, description, token, expected, context))

    def signed(doc: Any, signer: PrivateKey = gateway, **h: Any) -> str:
        return jws(header(**h), canonical(doc), signer)

    doc = body("valid")
    add("00-valid-sftp", "A batch of three: accepted, duplicate, refused.", signed(doc), None, doc)
    doc = body("valid-rest", intake="rest", source=None)
    doc["items"] = doc["items"][:1]
    add("00-valid-rest", "One REST envelope, accepted; source is null.", signed(doc), None, doc)
    doc = body("valid-empty", items=[])
    add("00-valid-no-items", "A receipt that lists no items.", signed(doc), None, doc)

    add("01-not-compact", "Four parts.", signed(body("parts")) + ".AAAA", "malformed")
    add("02-typ-notice", "typ: notice+jwt.", signed(body("typ"), typ=NOTICE_TYP), "header_invalid")
    add("02-alg-none", "alg: none.", signed(body("none"), alg="none"), "alg_forbidden")
    add(
        "03-signed-by-non-gateway-key",
        "Signed by the municipality's key (its own kid).",
        signed(body("municipality"), k["municipality"], kid=k["municipality"].kid),
        "key_unknown",
    )
    add(
        "04-other-key-with-gateway-kid",
        "Signed by another key whose header names the gateway's kid.",
        signed(body("substituted"), k["stranger"]),
        "signature_invalid",
    )
    token = signed(body("flip"))
    head, sig = token.rsplit(".", 1)
    add(
        "04-signature-bit-flipped",
        "One signature bit flipped.",
        f"{head}.{flip_bit(sig, 7, 5)}",
        "signature_invalid",
    )
    add(
        "05-payload-not-object",
        "The payload is a JSON array.",
        jws(header(), canonical([body("array")]), gateway),
        "malformed",
    )
    add(
        "06-member-missing",
        "The receipt has no source member.",
        signed(body("no-source", source=_DROP)),
        "malformed",
    )
    add(
        "06-extra-member",
        "The receipt carries a member 'note'.",
        signed(body("extra", note="x")),
        "malformed",
    )
    doc = body("item-extra")
    doc["items"][0]["cause"] = "none"
    add("07-item-extra-member", "An item carries a member 'cause'.", signed(doc), "malformed")
    doc = body("item-no-reason")
    del doc["items"][0]["reason"]
    add("07-item-reason-missing", "An item has no reason member.", signed(doc), "malformed")
    doc = body("positions")
    doc["items"][1]["position"] = 2
    doc["items"][2]["position"] = 1
    add("08-positions-out-of-order", "Items 1 and 2 swap positions.", signed(doc), "malformed")
    doc = body("outcome")
    doc["items"][0]["outcome"] = "rejected"
    add("08-outcome-unknown", "An item's outcome is 'rejected'.", signed(doc), "malformed")
    doc = body("refused-no-reason")
    doc["items"][2]["reason"] = None
    add("09-refused-without-reason", "A refused item with reason null.", signed(doc), "malformed")
    doc = body("accepted-reason")
    doc["items"][0]["reason"] = "schema_invalid"
    add("09-accepted-with-reason", "An accepted item with a reason.", signed(doc), "malformed")

    # Rules keys/ does not enforce yet (see tests/keys/test_vectors.py).
    add(
        "06-intake-unknown",
        "intake is 'ftp'.",
        signed(body("intake", intake="ftp")),
        "malformed",
    )
    doc = body("position-bool")
    doc["items"] = doc["items"][:2]
    doc["items"][1]["position"] = True
    add("08-position-boolean", "Item 1's position is true.", signed(doc), "malformed")
    doc = body("sha-not-hex")
    doc["items"][0]["envelopeSha256"] = "not a digest"
    add("08-envelope-sha-not-hex", "An envelopeSha256 that is not hex.", signed(doc), "malformed")
    return cases


# --- writing --------------------------------------------------------------------------------


def build(k: Keys) -> list[Case]:
    """Every case, in a fixed order."""
    envelopes = envelope_cases(k)
    inputs = {c.name: c.input for c in envelopes}
    return [*envelopes, *contact_cases(k), *receipt_cases(k, inputs)]


def render(case: Case) -> str:
    return json.dumps(case.document(), indent=2, ensure_ascii=False) + "\n"


def stale(cases: list[Case]) -> list[Path]:
    """Files that differ from what the generator writes, or should not be there."""
    wanted = {c.path: render(c) for c in cases}
    out = [p for p, text in wanted.items() if not p.exists() or p.read_text("utf-8") != text]
    for kind in KINDS:
        out += [p for p in sorted((HERE / kind).glob("*.json")) if p not in wanted]
    return out


def write(cases: list[Case]) -> None:
    wanted = {c.path: render(c) for c in cases}
    for kind in KINDS:
        (HERE / kind).mkdir(exist_ok=True)
        for path in (HERE / kind).glob("*.json"):
            if path not in wanted:
                path.unlink()
    for path, text in wanted.items():
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    cases = build(load_keys(create=not args.check))
    if args.check:
        for path in stale(cases):
            print(f"stale: {path.relative_to(HERE)}")
        return 1 if stale(cases) else 0
    write(cases)
    counts = {kind: sum(1 for c in cases if c.kind == kind) for kind in KINDS}
    print(", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
