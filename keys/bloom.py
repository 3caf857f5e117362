"""Keyed, balanced Bloom-filter encodings of single fields, for fuzzy comparison.

The municipality's tokeniser and the creditor adapter encode a normalised field with
keys derived from the linkage secret; the gateway, which holds neither the secret nor
the field, compares two encodings with ``similarity``. The format is specified in
``docs/fuzzy-encoding.md``. In short, per field:

1. the value is cut into q-grams (``FIELDS`` says which scheme);
2. each q-gram is keyed once, ``HMAC-SHA256(field key, q-gram)``, and sets ``k`` bits
   of an ``L``-bit filter by double hashing;
3. the filter is concatenated with its complement (``2L`` bits of weight exactly ``L``)
   and the ``2L`` bits are shuffled by a permutation derived from a second field key.

Both field keys come from HKDF-SHA256 over the linkage secret (salt
``signaalpoort/bloom/v1``, info ``bloom:<field>`` and ``bloom-perm:<field>``).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce
from operator import add, or_
from types import MappingProxyType

from keys.jose import b64d_many, b64e
from keys.tokens import FIELD_SEPARATOR, LinkageSecret, PersonFields, derive_key

__all__ = [
    "CARRIED",
    "FIELDS",
    "MAX_VALUES",
    "BloomEncoder",
    "FieldSpec",
    "decode",
    "pack",
    "similarity",
    "unpack",
]

HKDF_SALT = b"signaalpoort/bloom/v1"
PAD = "_"


@dataclass(frozen=True)
class FieldSpec:
    """How one field is encoded: ``bits`` (L) per filter, ``hashes`` (k) per q-gram."""

    bits: int
    hashes: int
    qgrams: str
    """``"bigrams"`` (of the value padded with one ``_`` each side) or ``"date"``."""

    @property
    def size(self) -> int:
        """The length in bytes of an encoding: 2L bits."""
        return 2 * self.bits // 8


FIELDS: Mapping[str, FieldSpec] = MappingProxyType(
    {
        "naam": FieldSpec(bits=256, hashes=15, qgrams="bigrams"),
        "voornaam": FieldSpec(bits=256, hashes=15, qgrams="bigrams"),
        "adres": FieldSpec(bits=256, hashes=12, qgrams="bigrams"),
        "geb": FieldSpec(bits=256, hashes=10, qgrams="date"),
    }
)
"""The encoded fields; the reasons for each L and k are in ``docs/fuzzy-encoding.md``:

- ``naam``: one core surname (``keys.normalise.surname_cores``);
- ``voornaam``: one given name (``keys.normalise.given_names``), such as ``jan willem``;
- ``adres``: postcode and house number, ``1012AB 12``;
- ``geb``: the birth date, ``YYYY-MM-DD``.
"""

CARRIED: tuple[str, ...] = ("naam", "adres", "geb", "voornaam")
"""The fields whose encodings a notice and a register person carry (``fuzzy``), in the
order ``pack`` stores them."""
MAX_VALUES = 8
"""At most this many encodings of one field (a person's surnames in use, given names)."""

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_YEAR = re.compile(r"[0-9]{4}")
_MONTH_DAY = re.compile(r"-([0-9]{2})-([0-9]{2})")
_WORD = 1 << 64
_CACHE_LIMIT = 1 << 14


def _permutation(key: bytes, n: int) -> list[int]:
    """A keyed Fisher–Yates shuffle of ``range(n)``: input bit p goes to output perm[p].

    The randomness is the stream ``HMAC-SHA256(key, c)`` for c = 0, 1, … as 8-byte
    big-endian counters, read as consecutive 64-bit big-endian words; a bound is met by
    rejection, so every index is uniform.
    """
    words: list[int] = []
    counter = 0

    def draw(bound: int) -> int:
        nonlocal counter
        limit = _WORD - _WORD % bound
        while True:
            if not words:
                block = hmac.digest(key, counter.to_bytes(8, "big"), "sha256")
                counter += 1
                # Reversed, so that pop() reads the words in stream order.
                words.extend(int.from_bytes(block[i : i + 8], "big") for i in (24, 16, 8, 0))
            word = words.pop()
            if word < limit:
                return word % bound

    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = draw(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _bigrams(value: str) -> set[str]:
    padded = PAD + value + PAD
    return {padded[i : i + 2] for i in range(len(padded) - 1)}


def _year_tokens(year: str) -> list[str]:
    return [f"y:{year}", *(f"p{i}:{digit}" for i, digit in enumerate(year))]


def _day_tokens(month: str, day: str) -> list[str]:
    low, high = sorted((month, day))
    return [
        f"m:{month}",
        f"d:{day}",
        # The same for a date with day and month swapped.
        f"dm:{low}-{high}",
        *(f"p{i}:{digit}" for i, digit in enumerate(month + day, start=4)),
    ]


def _date_tokens(value: str) -> set[str]:
    m = _DATE.fullmatch(value)
    if m is None:
        raise ValueError("geb: not of the form YYYY-MM-DD")
    return {*_year_tokens(m[1]), *_day_tokens(m[2], m[3])}


class _Masks(dict[str, int]):
    """Output masks by q-gram (or by part of a date), each worked out on first sight.

    A field's alphabet is small (letters, digits, space), so after a few thousand
    values almost every q-gram has been seen and an encoding is a few dict look-ups.
    """

    __slots__ = ("_compute",)

    def __init__(self, compute: Callable[[str], int]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, key: str) -> int:
        mask = self._compute(key)
        if len(self) < _CACHE_LIMIT:
            self[key] = mask
        return mask


class _Field:
    """One field's keys, permutation and mask caches.

    A mask holds, for a set of q-grams, where their filter bits land in the output
    (low 2L bits) and where the complements of those bits land (high 2L bits). The
    permutation commutes with OR, so the output of a value is the OR of its q-grams'
    low halves, plus every complement position except those in the OR of the high
    halves.
    """

    __slots__ = ("complement", "days", "grams", "key", "perm", "size", "spec", "width", "years")

    def __init__(self, name: str, spec: FieldSpec, secret: bytes) -> None:
        self.spec = spec
        self.size = spec.size
        self.width = 2 * spec.bits
        self.key = derive_key(secret, salt=HKDF_SALT, info=b"bloom:" + name.encode("ascii"))
        self.perm = _permutation(
            derive_key(secret, salt=HKDF_SALT, info=b"bloom-perm:" + name.encode("ascii")),
            self.width,
        )
        # The output of an empty filter: every complement bit set, where it lands.
        self.complement = sum(1 << p for p in self.perm[spec.bits :])
        self.grams = _Masks(self._gram_mask)
        self.years = _Masks(self._year_mask)
        self.days = _Masks(self._day_mask)

    def qgrams(self, value: str) -> set[str]:
        """The q-grams of a value, as the specification lists them."""
        return _date_tokens(value) if self.spec.qgrams == "date" else _bigrams(value)

    def positions(self, qgram: str) -> set[int]:
        """The filter bits one q-gram sets: (h1 + i·h2) mod L for i < k."""
        digest = hmac.digest(self.key, qgram.encode(), "sha256")
        h1 = int.from_bytes(digest[:8], "big")
        h2 = int.from_bytes(digest[8:16], "big") | 1
        bits = self.spec.bits
        return {(h1 + i * h2) % bits for i in range(self.spec.hashes)}

    def encode(self, value: str) -> bytes:
        if self.spec.qgrams == "date":
            # Cached by year and by "-MM-DD", each checked for its shape before it is
            # cached, so two cached halves always make a well-formed date.
            mask = self.years[value[:4]] | self.days[value[4:]]
        else:
            padded = PAD + value + PAD
            mask = reduce(or_, map(self.grams.__getitem__, map(add, padded, padded[1:])))
        ones = mask & ((1 << self.width) - 1)
        return (ones | (self.complement ^ (mask >> self.width))).to_bytes(self.size, "big")

    def _gram_mask(self, qgram: str) -> int:
        perm, bits = self.perm, self.spec.bits
        positions = self.positions(qgram)
        ones = sum(1 << perm[p] for p in positions)
        zeros = sum(1 << perm[bits + p] for p in positions)
        return ones | zeros << self.width

    def _year_mask(self, year: str) -> int:
        if not _YEAR.fullmatch(year):
            raise ValueError("geb: not of the form YYYY-MM-DD")
        return reduce(or_, map(self.grams.__getitem__, _year_tokens(year)))

    def _day_mask(self, month_day: str) -> int:
        m = _MONTH_DAY.fullmatch(month_day)
        if m is None:
            raise ValueError("geb: not of the form YYYY-MM-DD")
        return reduce(or_, map(self.grams.__getitem__, _day_tokens(m[1], m[2])))


class BloomEncoder:
    """Makes balanced Bloom-filter encodings with the keys derived from one linkage secret.

    Values are normalised by the caller as for match tokens (``keys.normalise``): a core
    surname, a given name, ``1234AB 12``, an ISO birth date. An unknown field is left
    out by the caller, never encoded as an empty value.
    """

    __slots__ = ("_fields", "_kid")

    def __init__(self, secret: LinkageSecret) -> None:
        self._kid = secret.kid
        self._fields = {name: _Field(name, spec, secret.secret) for name, spec in FIELDS.items()}

    @property
    def kid(self) -> str:
        """The kid of the linkage secret, carried beside the encodings it keyed."""
        return self._kid

    def encode(self, field: str, value: str) -> bytes:
        """The balanced, permuted filter of one normalised value: 2L bits, L of them set.

        Raises ValueError for an unknown field, an empty value, a value holding the
        field separator, or (``geb``) a value that is not ``YYYY-MM-DD``.
        """
        return self._state(field, value).encode(value)

    def encode_b64(self, field: str, value: str) -> str:
        """``encode`` as base64url without padding."""
        return b64e(self.encode(field, value))

    def person(self, person: PersonFields) -> dict[str, list[str]]:
        """The ``CARRIED`` encodings of a person, as a notice or register record holds
        them: per field a list of base64url strings; a field not known is left out.

        ``naam`` encodes each core surname (``PersonFields.cores``), ``adres`` the
        postcode and house number (``1234AB 12``), ``geb`` the birth date (and on a
        creditor's side the same with day and month swapped, ``birth_swapped``),
        ``voornaam`` each given name known (``PersonFields.given``).
        """
        values = {
            "naam": list(dict.fromkeys(c for c in person.cores if c))[:MAX_VALUES],
            "adres": [f"{person.postcode} {person.huisnummer}"]
            if person.postcode and person.huisnummer is not None
            else [],
            "geb": [d for d in (person.birth_date, person.birth_swapped) if d],
            "voornaam": list(person.given[:MAX_VALUES]),
        }
        return {
            field: [self.encode_b64(field, value) for value in found]
            for field, found in values.items()
            if found
        }

    def _filter(self, field: str, value: str) -> int:
        """The unbalanced, unpermuted filter as an L-bit integer (bit j is position j)."""
        state = self._state(field, value)
        positions: set[int] = set()
        for qgram in state.qgrams(value):
            positions |= state.positions(qgram)
        return sum(1 << p for p in positions)

    def _state(self, field: str, value: str) -> _Field:
        try:
            state = self._fields[field]
        except KeyError:
            raise ValueError(f"unknown Bloom field {field!r}") from None
        if not value:
            raise ValueError(f"{field}: empty value (leave an unknown field out)")
        if FIELD_SEPARATOR in value:
            raise ValueError(f"{field}: value contains the field separator")
        return state


def similarity(a: bytes, b: bytes) -> float:
    """The share of bit positions in which two encodings of one field agree, 0.0 to 1.0.

    For balanced filters this is ``1 - h / L``, where h is the Hamming distance of the
    two unbalanced L-bit filters (the balanced distance is exactly 2h). Raises
    ValueError for encodings of different (or zero) length.
    """
    if len(a) != len(b) or not a:
        raise ValueError("encodings of different lengths cannot be compared")
    distance = (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
    return 1.0 - distance / (8 * len(a))


def decode(fuzzy: object) -> dict[str, list[bytes]]:
    """A notice's or register record's ``fuzzy`` member, checked: a JSON object of
    ``CARRIED`` fields, each a list of 1 to ``MAX_VALUES`` base64url encodings of the
    field's size. Raises ValueError (naming no value) for anything else."""
    if not isinstance(fuzzy, dict):
        raise ValueError("fuzzy: not an object")
    for field, values in fuzzy.items():
        if field not in CARRIED:
            raise ValueError("fuzzy: unknown field")
        if not isinstance(values, list) or not 0 < len(values) <= MAX_VALUES:
            raise ValueError(f"fuzzy: {field} is not a list of 1 to {MAX_VALUES} encodings")
    # The fields of one size are decoded together: a notice's three or four fields in
    # one pass, where each alone costs nearly as much.
    out: dict[str, list[bytes]] = {}
    for size in {FIELDS[field].size for field in fuzzy}:
        fields = [field for field in fuzzy if FIELDS[field].size == size]
        try:
            decoded = iter(b64d_many([v for field in fields for v in fuzzy[field]], size))
        except ValueError:
            bad = next(f for f in fields if not _decodes(fuzzy[f], size))
            raise ValueError(f"fuzzy: a {bad} encoding is not {size} bytes of base64url") from None
        for field in fields:
            out[field] = [next(decoded) for _ in fuzzy[field]]
    return out


def _decodes(values: list[str], size: int) -> bool:
    try:
        b64d_many(values, size)
    except ValueError:
        return False
    return True


def pack(fuzzy: Mapping[str, list[bytes]]) -> bytes:
    """Encodings as one byte string, for storage: per ``CARRIED`` field a count byte,
    then that many encodings of the field's size."""
    parts = []
    for field in CARRIED:
        values = fuzzy.get(field, [])
        parts.append(bytes([len(values)]))
        parts.extend(values)
    return b"".join(parts)


def unpack(packed: bytes) -> dict[str, list[bytes]]:
    """The inverse of ``pack``; fields without an encoding are left out."""
    out: dict[str, list[bytes]] = {}
    at = 0
    for field in CARRIED:
        count, size = packed[at], FIELDS[field].size
        at += 1
        if count:
            out[field] = [packed[at + i * size : at + (i + 1) * size] for i in range(count)]
            at += count * size
    if at != len(packed):
        raise ValueError("packed encodings: trailing bytes")
    return out
