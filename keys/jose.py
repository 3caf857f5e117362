"""The JOSE profile: one algorithm per job, strict headers, canonical JSON.

Headers are checked here, against explicit allow-lists, before ``joserfc`` is asked to
do any cryptography: ``none``, ``zip``, ``b64``, ``crit``, key URLs and embedded keys
are refused, as is every algorithm but ES256 (signatures) and ECDH-ES+A256KW with
A256GCM (encryption).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import orjson
import pybase64
from joserfc.jwe import JWERegistry
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

SIG_ALG = "ES256"
KEY_ALG = "ECDH-ES+A256KW"
ENC_ALG = "A256GCM"

JWS_HEADERS = frozenset({"alg", "kid", "typ"})
JWE_HEADERS = frozenset({"alg", "enc", "kid", "cty", "typ", "epk"})

# Headers the profile never accepts; each has its own cause in the audit log.
_CAUSE_FOR_HEADER = {"zip": "zip_forbidden", "crit": "crit_unsupported"}


class HeaderError(ValueError):
    """A header fails the profile; ``cause`` names the envelope cause."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class _BigJWSRegistry(JWSRegistry):
    # Receipts list up to a whole batch file, far above joserfc's 128 kB default.
    max_payload_length = 64 * 1024 * 1024


JWS_REGISTRY = JWSRegistry(algorithms=[SIG_ALG], strict_check_header=True)
RECEIPT_REGISTRY = _BigJWSRegistry(algorithms=[SIG_ALG], strict_check_header=True)
JWE_REGISTRY = JWERegistry(algorithms=[KEY_ALG, ENC_ALG], strict_check_header=True)
CONTACT_REGISTRY = JWERegistry(
    header_registry={"jti": HeaderParameter("Notice id the block is bound to", "str", True)},
    algorithms=[KEY_ALG, ENC_ALG],
    strict_check_header=True,
    verify_all_recipients=False,
)


_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# The last character of a canonical encoding leaves its unused low bits zero.
_LAST_OF_ONE_BYTE = frozenset("AQgw")
_LAST_OF_TWO_BYTES = frozenset("AEIMQUYcgkosw048")


def is_b64url(part: str) -> bool:
    """Whether ``part`` is canonical base64url without padding (checked without decoding).

    Non-canonical trailing bits are refused, so that every flipped bit changes the bytes.
    """
    # Deleting the alphabet leaves nothing of a valid part: one pass in C, where a
    # regular expression costs several times as much on the envelope's large parts.
    if not part.isascii() or part.encode("ascii").translate(None, _B64URL_ALPHABET):
        return False
    rest = len(part) % 4
    if rest == 2:
        return part[-1] in _LAST_OF_ONE_BYTE
    if rest == 3:
        return part[-1] in _LAST_OF_TWO_BYTES
    return rest == 0


def b64d(part: str) -> bytes:
    """Strict base64url without padding."""
    if not is_b64url(part):
        raise ValueError("not canonical base64url without padding")
    # The check above admits the URL alphabet only; pybase64 decodes it with SIMD, about
    # twenty times faster than binascii on an envelope's ciphertext.
    try:
        return pybase64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64url") from exc


def b64d_many(parts: list[str], length: int) -> list[bytes]:
    """``[b64d(part) for part in parts]`` for parts that must each decode to ``length``
    bytes, checked and decoded together (a register load decodes millions of them).

    Raises ValueError unless every part is a string of canonical base64url without
    padding of exactly ``length`` bytes.
    """
    chars = -(-length * 4 // 3)
    if not all(type(part) is str and len(part) == chars for part in parts):
        raise ValueError(f"not a list of {chars}-character strings")
    if not parts:
        return []
    joined = "".join(parts)
    if not joined.isascii():
        raise ValueError("not canonical base64url without padding")
    data = joined.encode("ascii")
    rest = chars % 4
    last = data[chars - 1 :: chars].decode("ascii")
    if data.translate(None, _B64URL_ALPHABET) or (
        rest and not set(last) <= (_LAST_OF_ONE_BYTE if rest == 2 else _LAST_OF_TWO_BYTES)
    ):
        raise ValueError("not canonical base64url without padding")
    # Each part padded with zero characters to whole groups of four: the canonical part's
    # unused low bits are zero, so the padding only adds zero bytes after its own.
    pad = b"A" * (-chars % 4)
    step = (chars + len(pad)) * 3 // 4
    raw = pybase64.b64decode(
        pad.join(data[i : i + chars] for i in range(0, len(data), chars)) + pad,
        altchars=b"-_",
        validate=True,
    )
    return [raw[i : i + length] for i in range(0, len(raw), step)]


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8 (the bytes that get signed/hashed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def loads_object(data: bytes | str) -> dict[str, Any]:
    """Parse strict JSON that must be an object.

    UTF-8 only (no BOM, no UTF-16/32), no duplicate members, no NaN or Infinity, and no
    lone surrogates: anything whose canonical form would differ from what was parsed.

    Compact text (no spaces, members in any order, as ``canonical`` and joserfc write
    it) is proven strict by re-serialising it with orjson, which keeps the members'
    order: a duplicate member, a number out of range or an escape would make the bytes
    differ. Anything else, and anything orjson refuses, goes through the strict parser
    below, which decides.
    """
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    try:
        parsed = orjson.loads(raw)
        if type(parsed) is dict and orjson.dumps(parsed) == raw:
            return parsed
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ValueError("JSON must be UTF-8") from exc
    obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    if not isinstance(obj, dict):
        raise ValueError("a JSON object is expected")
    if "\\u" in text:
        try:
            canonical(obj)
        except UnicodeEncodeError as exc:
            raise ValueError("lone surrogate in JSON string") from exc
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member in JSON object")
    return out


def compact_parts(token: str, count: int) -> list[str]:
    """Split a compact serialization; every part must be canonical base64url."""
    parts = token.split(".")
    if len(parts) != count:
        raise HeaderError("malformed")
    if not all(is_b64url(part) for part in parts):
        raise HeaderError("malformed")
    return parts


def parse_header(part: str) -> dict[str, Any]:
    try:
        header = loads_object(b64d(part))
    except ValueError as exc:
        raise HeaderError("malformed") from exc
    return header


def check_jws_header(header: dict[str, Any], *, typ: str | None) -> None:
    _check_common(header, JWS_HEADERS)
    if header.get("alg") != SIG_ALG:
        raise HeaderError("alg_forbidden")
    if not isinstance(header.get("kid"), str):
        raise HeaderError("header_invalid")
    if typ is not None and header.get("typ") != typ:
        raise HeaderError("header_invalid")


def check_jwe_header(header: dict[str, Any], *, allowed: frozenset[str] = JWE_HEADERS) -> None:
    _check_common(header, allowed)
    if header.get("alg") != KEY_ALG or header.get("enc") != ENC_ALG:
        raise HeaderError("alg_forbidden")
    if not isinstance(header.get("kid"), str):
        raise HeaderError("header_invalid")
    if not is_epk(header.get("epk")):
        raise HeaderError("header_invalid")


_EPK_MEMBERS = frozenset({"kty", "crv", "x", "y"})


def is_epk(epk: Any) -> bool:
    """Whether ``epk`` is exactly ``{"kty": "EC", "crv": "P-256", "x": str, "y": str}``."""
    return (
        type(epk) is dict
        and epk.keys() == _EPK_MEMBERS
        and epk["kty"] == "EC"
        and epk["crv"] == "P-256"
        and type(epk["x"]) is str
        and type(epk["y"]) is str
    )


def _check_common(header: dict[str, Any], allowed: frozenset[str]) -> None:
    for name, cause in _CAUSE_FOR_HEADER.items():
        if name in header:
            raise HeaderError(cause)
    if header.get("alg") == "none":
        raise HeaderError("alg_forbidden")
    if set(header) - allowed:
        raise HeaderError("header_invalid")
    for name in ("typ", "cty"):
        if name in header and not isinstance(header[name], str):
            raise HeaderError("header_invalid")
