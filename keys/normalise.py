"""Normalisation of the personal fields that go into match tokens.

Creditor and register side run the same functions, so both sides reduce a name or an
address to the same string before it is keyed. Every function is pure. A value that
cannot be normalised raises ``FieldInvalid`` whose message names the field, never the
value.

Surnames are matched on their *core*: the surname without its voorvoegsel ("van der
Berg" → "berg"), because creditors write the voorvoegsel in every position and case
("Van der Berg", "Berg, van der", "v.d. Berg").
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache
from operator import mul

from keys.errors import FieldInvalid

__all__ = [
    "VOORVOEGSELS",
    "birth_date",
    "bsn",
    "fold",
    "given_names",
    "huisnummer",
    "initials",
    "name_variants",
    "optional_birth_date",
    "phonetic",
    "postcode",
    "split_surname",
    "surname_cores",
]

# --- fold -------------------------------------------------------------------------------

_APOSTROPHES = "'`\u00b4\u02bb\u02bc\u2018\u2019\u201b\u2032"

# Letters that NFKD leaves alone because they are letters of their own, not a base letter
# with a mark.
_SPECIAL_LETTERS = {
    "ß": "ss",
    "ẞ": "ss",
    "æ": "ae",
    "Æ": "ae",
    "œ": "oe",
    "Œ": "oe",
    "ø": "o",
    "Ø": "o",
    "ł": "l",
    "Ł": "l",
    "đ": "d",
    "Đ": "d",
    "ð": "d",
    "Ð": "d",
    "þ": "th",
    "Þ": "th",
    "ı": "i",
    "ħ": "h",
    "Ħ": "h",
    "ŧ": "t",
    "Ŧ": "t",
    "ŋ": "ng",
    "Ŋ": "ng",
    "ĸ": "k",
    "ƒ": "f",
    "ə": "e",
    "Ə": "e",
}


class _FoldTable(dict[int, str | None]):
    """A ``str.translate`` table that works out (and remembers) each code point once.

    Filled eagerly for ASCII; anything else is decided on first sight, so ``fold`` pays
    the ``unicodedata`` look-ups once per distinct character, not once per call.
    """

    def __init__(self) -> None:
        super().__init__()
        for cp in range(128):
            ch = chr(cp)
            if ch in _APOSTROPHES:
                self[cp] = None
            elif ch.isalnum():
                self[cp] = ch.lower()
            else:
                self[cp] = " "

    def __missing__(self, cp: int) -> str | None:
        value = self._decide(chr(cp))
        self[cp] = value
        return value

    @staticmethod
    def _decide(ch: str) -> str | None:
        if ch in _SPECIAL_LETTERS:
            return _SPECIAL_LETTERS[ch]
        if ch in _APOSTROPHES or unicodedata.combining(ch):
            return None
        category = unicodedata.category(ch)
        if category.startswith("M"):
            return None
        digit = unicodedata.decimal(ch, None)
        if digit is not None:
            return str(digit)
        # A letter with no ASCII form is dropped rather than split on: a space would
        # cut one word into two and change how the surname splits.
        if category.startswith("L"):
            return None
        return " "


_FOLD_TABLE = _FoldTable()
# Deleted before NFKD, which would otherwise turn the acute accent U+00B4 into a space
# plus a combining mark and split "O´Brien" in two.
_APOSTROPHE_DELETE = str.maketrans("", "", _APOSTROPHES)


def fold(text: str) -> str:
    """Reduce text to lowercase ASCII words: marks dropped, apostrophes removed, other
    punctuation to a space, whitespace collapsed ("Ærøskøbing-d'Été" → "aeroskobing dete").
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHE_DELETE))
    return " ".join(text.translate(_FOLD_TABLE).split())


# --- surnames ---------------------------------------------------------------------------

# As comma-separated lines, so the formatter keeps them in rows.
_PREFIX_ROWS = (
    # Dutch
    "'s, 't, aan, aan 't, aan de, aan den, aan der, aan het, bij, bij 't, bij de, bij den",
    "bij het, de, den, der, het, in, in 't, in de, in den, in der, in het, op, op 't",
    "op de, op den, op der, op het, op ten, over, over 't, over de, over den, over het",
    "te, ten, ter, toe, tot, uit, uit 't, uit de, uit den, uit het, uit te de, uit ten",
    "uijt, uijt de, uijt den, van, van 't, van de, van den, van der, van het, van la",
    "van ter, van van de, ver, voor, voor 't, voor de, voor den, voor in 't",
    # German, French, Italian, Spanish, Portuguese, Arabic
    "auf, auf dem, auf den, auf der, aus, aus dem, aus den, aus der, von, von dem",
    "von den, von der, vom, zu, zum, zur, a, d', de la, de l', de le, de las, de los",
    "des, du, l', la, le, les, da, dal, dall', dalla, del, dell', della, di, do, dos",
    "das, el, al",
    # What creditors' systems write for "van" and "van der", "van den", "van de"
    "v., v.d., v/d, vd, v. der, v. den, v. de",
)

VOORVOEGSELS: tuple[str, ...] = tuple(
    sorted(
        {p for row in _PREFIX_ROWS for p in row.split(", ")},
        key=lambda p: (-len(fold(p).split()), -len(p), p),
    )
)
"""Surname prefixes as the BRP writes them, longest match first.

They are matched on their folded form, so "van 't" is found as "van t" and "d'" as "d".
"""

_PREFIXES = frozenset(fold(p) for p in VOORVOEGSELS)
_PREFIX_WORDS = tuple(sorted({len(p.split()) for p in _PREFIXES}, reverse=True))

# "d'Ancona", "l'Amour": the apostrophe is the only thing between an elided article and
# the name; without a space here, fold would glue them into one word.
_ELIDED = re.compile(r"^\s*(dall|dell|d|l)['`\u00b4\u02bc\u2018\u2019](?=\w)", re.IGNORECASE)
_HYPHENATED_PREFIXES = frozenset({"s", "t"})
_DOUBLE_NAME = re.compile(r"[-\u2010\u2011\u2012\u2013\u2014]")


def _split_leading(words: list[str]) -> tuple[str, str]:
    for n in _PREFIX_WORDS:
        if len(words) > n:
            head = " ".join(words[:n])
            if head in _PREFIXES:
                return head, " ".join(words[n:])
    return "", " ".join(words)


@lru_cache(maxsize=1 << 16)
def _split_surname(surname: str, voorvoegsel: str) -> tuple[str, str]:
    given = fold(voorvoegsel)
    if not given and "," in surname:
        # "Berg, van der": the voorvoegsel written after the name, as in a sorted list.
        name, _, tail = surname.rpartition(",")
        if fold(tail) in _PREFIXES and fold(name):
            return fold(tail), fold(name)
    core = fold(_ELIDED.sub(r"\1 ", surname))
    if given:
        # Some exports repeat the voorvoegsel in the surname column as well.
        if core.startswith(given + " "):
            core = core[len(given) + 1 :]
        return given, core
    return _split_leading(core.split())


def split_surname(surname: str, voorvoegsel: str = "") -> tuple[str, str]:
    """Split a surname into (voorvoegsel, core), both folded: "van der Berg" → ("van der", "berg").

    A given ``voorvoegsel`` wins; otherwise a leading one is found in the surname. A
    surname that is only a prefix word ("De") is kept as the core.
    """
    return _split_surname(surname, voorvoegsel)


@lru_cache(maxsize=1 << 16)
def _surname_cores(surname: str, voorvoegsel: str) -> tuple[str, ...]:
    parts = [p for p in _DOUBLE_NAME.split(surname) if fold(p)]
    # "'s-Gravesande", "'t-Hooft": the hyphen follows a prefix, it does not join two
    # names. Only these: a double name may well start with a name like "Te" or "Van".
    merged: list[str] = []
    carry = ""
    for part in parts:
        if fold(part) in _HYPHENATED_PREFIXES:
            carry = f"{carry} {part}"
            continue
        merged.append(f"{carry} {part}" if carry else part)
        carry = ""
    if carry:
        merged.append(carry)
    if len(merged) <= 1:
        core = split_surname(merged[0] if merged else "", voorvoegsel)[1]
        return (core,) if core else ()
    # The voorvoegsel column belongs to the first part ("van Dijk-Jansen").
    cores = [split_surname(merged[0], voorvoegsel)[1]]
    cores += [split_surname(part)[1] for part in merged[1:]]
    cores.append(" ".join(cores))
    return tuple(dict.fromkeys(c for c in cores if c))


def surname_cores(surname: str, voorvoegsel: str = "") -> list[str]:
    """The core surnames a name is known by: each part of a double name and the whole.

    "Jansen-de Vries" → ["jansen", "vries", "jansen vries"]; deduplicated, in order.
    """
    return list(_surname_cores(surname, voorvoegsel))


def _joined_core(surname: str, voorvoegsel: str) -> str:
    cores = _surname_cores(surname, voorvoegsel)
    return cores[-1] if cores else ""


def name_variants(
    *,
    geslachtsnaam: str,
    voorvoegsel: str,
    naamgebruik: str,
    partner_geslachtsnaam: str,
    partner_voorvoegsel: str,
) -> list[str]:
    """Every core surname a creditor may know a registered person by.

    Naamgebruik E (own name) gives the own cores. P, V and N (partner's name; partner's
    then own; own then partner's) give the own and partner's cores and both combined
    forms, because a creditor may know any of them whatever the register says is in
    use. An empty or unknown naamgebruik, or a missing partner name, behaves as E.
    """
    own = _surname_cores(geslachtsnaam, voorvoegsel)
    partner = _surname_cores(partner_geslachtsnaam, partner_voorvoegsel)
    usage = naamgebruik.strip().upper()
    if usage not in ("P", "V", "N") or not partner:
        return list(own)
    own_whole = _joined_core(geslachtsnaam, voorvoegsel)
    partner_whole = _joined_core(partner_geslachtsnaam, partner_voorvoegsel)
    partner_own = f"{partner_whole} {own_whole}".strip()
    own_partner = f"{own_whole} {partner_whole}".strip()
    if usage == "N":
        variants = [*own, *partner, own_partner, partner_own]
    else:
        variants = [*partner, *own, partner_own, own_partner]
    return list(dict.fromkeys(v for v in variants if v))


# Cached: a register repeats given names and surnames, and reading one person takes the
# initials of both.
@lru_cache(maxsize=1 << 16)
def initials(names: str) -> str:
    """The initials of given names: "Jan Pieter" → "jp", "J. P. K." → "jpk", "Jan-Willem" → "jw".

    Letters run together without separators ("JP") are read as one name.
    """
    return "".join(word[0] for word in fold(names).split())


def given_names(voornamen: str) -> tuple[str, ...]:
    """The given names, each folded: "Jan-Willem Émile" → ("jan willem", "emile").

    Initials are not names and are left out ("J.P. Pieter" → ("pieter",)): a word
    counts only if some part of it is longer than one letter.
    """
    names = (fold(word) for word in voornamen.split())
    return tuple(dict.fromkeys(n for n in names if any(len(part) > 1 for part in n.split())))


# --- address, date, BSN -----------------------------------------------------------------

_POSTCODE = re.compile(r"[1-9][0-9]{3}[A-Z]{2}")
_HUISNUMMER = re.compile(r"[0-9]{1,5}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_BSN = re.compile(r"[0-9]{8,9}")
_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)
_BSN_CODE_EXCESS = ord("0") * sum(_BSN_WEIGHTS)


def postcode(value: str) -> str:
    """A Dutch postcode as ``1234AB``: "1234 ab" → "1234AB"; the first digit is not 0."""
    compact = "".join(value.split()).upper()
    if not _POSTCODE.fullmatch(compact):
        raise FieldInvalid("postcode: not of the form 1234AB", cause="postcode")
    return compact


def huisnummer(value: str | int) -> int:
    """A house number, 1 to 99999."""
    if isinstance(value, bool):
        raise FieldInvalid("huisnummer: not a number", cause="huisnummer")
    if isinstance(value, int):
        number = value
    else:
        text = value.strip()
        if not _HUISNUMMER.fullmatch(text):
            raise FieldInvalid("huisnummer: not a number of 1 to 5 digits", cause="huisnummer")
        number = int(text)
    if not 1 <= number <= 99999:
        raise FieldInvalid("huisnummer: not between 1 and 99999", cause="huisnummer")
    return number


# Cached: a century holds fewer than 40,000 days, so a register repeats them.
@lru_cache(maxsize=1 << 16)
def birth_date(value: str) -> str:
    """A date of birth as ISO ``YYYY-MM-DD`` that names a real day, returned unchanged."""
    text = value.strip()
    m = _ISO_DATE.fullmatch(text)
    if m is None:
        raise FieldInvalid("geboortedatum: not of the form YYYY-MM-DD", cause="geboortedatum")
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise FieldInvalid("geboortedatum: not a real date", cause="geboortedatum") from None
    return text


def optional_birth_date(value: str) -> str | None:
    """Like ``birth_date``, but an empty value is None (unknown)."""
    return birth_date(value) if value.strip() else None


def bsn(value: str) -> str:
    """A burgerservicenummer of 9 digits (8 get a leading zero) that passes the elfproef."""
    text = value.strip()
    if not _BSN.fullmatch(text):
        raise FieldInvalid("bsn: not 8 or 9 digits", cause="bsn")
    text = text.zfill(9)
    # Summed over the ASCII codes, which saves an int() per digit: each code is its digit
    # plus 48, so the sum is 48 times the sum of the weights too high.
    total = sum(map(mul, _BSN_WEIGHTS, text.encode())) - _BSN_CODE_EXCESS
    if total % 11 or text == "000000000":
        raise FieldInvalid("bsn: fails the elfproef", cause="bsn")
    return text


# --- phonetic key -----------------------------------------------------------------------

# One pass, leftmost match; at one position the first alternative that matches wins, so
# longer spellings come before their prefixes ("sch" before "ch", "uij" before "ij").
_PHONETIC_MAP = {
    "chr": "kr",
    "sch": "s",
    "ck": "k",
    "ch": "g",
    "gh": "g",
    "ph": "f",
    "th": "t",
    "qu": "kw",
    "c": "k",
    "uij": "ui",
    "uy": "ui",
    "ui": "ui",
    "eij": "ei",
    "ei": "ei",
    "ey": "ei",
    "ij": "ei",
    "y": "ei",
    "auw": "au",
    "ouw": "au",
    "ou": "au",
    "ie": "i",
    "ae": "a",
    "dt": "t",
    "d": "t",
    "b": "p",
    "x": "ks",
    "z": "s",
    "v": "f",
    "q": "k",
}
_PHONETIC = re.compile(
    r"chr|sch|ck|ch|gh|ph|th|qu|(?P<soft>c)(?=[eiy])|c"
    r"|uij|uy|ui|eij|ei|ey|ij|y|auw|ouw|ou|ie|ae"
    r"|dt|d\b|b\b|x|z|v|q"
)
_DOUBLED = re.compile(r"([a-z])\1+")


def _phonetic_part(m: re.Match[str]) -> str:
    if m.lastgroup == "soft":
        return "s"
    return _PHONETIC_MAP[m.group()]


@lru_cache(maxsize=1 << 16)
def _phonetic(core: str) -> str:
    return _DOUBLED.sub(r"\1", _PHONETIC.sub(_phonetic_part, fold(core)))


def phonetic(core: str) -> str:
    """A Dutch phonetic key of a core surname, so that spelling variants meet.

    The text is folded, then rewritten in one left-to-right pass:

    - "ch" before "r" is "kr" (Christiaens); "sch" is "s" (Schmidt, Bosch, Visscher);
      "ck" is "k"; "ch" and "gh" are "g"; "ph" is "f"; "th" is "t"; "qu" is "kw";
    - "c" before e, i or y is "s", any other "c" is "k";
    - "uij" and "uy" are "ui" (Kuijpers, Kuypers, Kuipers);
    - "ij", "eij", "ey" and "y" are "ei" (Bijl, Byl, Beil; Meijer, Meyer, Meier), and
      "ei" and "ui" are kept whole so that a following "e" does not make an "ie";
    - "ou", "ouw" and "auw" are "au" (Bouwman, Bauman);
    - "ie" is "i"; "ae" is "a" (Flemish Baert, Baart);
    - "dt" is "t", and "d" and "b" at the end of a word are "t" and "p" (Smid, Smit);
    - "x" is "ks", "z" is "s", "v" is "f", "q" is "k";

    and finally every run of one letter is collapsed to one (Janssen, Jansen; Groot,
    Grood). "w" stays distinct from "v". The result is a key for finding candidates, not
    a spelling: "Schmidt" and "Smith" both become "smit".
    """
    return _phonetic(core)
