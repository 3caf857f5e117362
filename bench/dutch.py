"""Seeded synthetic Dutch data: a BRP extract, a creditor export and the ground truth.

    .venv/bin/python bench/dutch.py --persons 100000 --notices 20000 --seed 1 --out DIR

Writes ``DIR/brp.csv``, ``DIR/notices.csv`` and ``DIR/truth.csv`` (formats: DESIGN.md,
"File formats at the edges") and prints one JSON object with counts. Importable as
``from bench.dutch import generate, write``. Standard library only; everything comes
from one ``random.Random(seed)``, so the same arguments give byte-identical files.

The register (``brp.csv``)
--------------------------
Amsterdam (gemeentecode ``0363``): postcodes 1011AA-1109ZZ (no SA/SD/SS letter pairs),
wijkcode = stadsdeel letter + number (``A05``, ``N03``, ``T01``...). Households of 1-5
people (about 50 % single; couples, couples with children, single parents). Couples
are married in 60 % of cases; married partners carry each other's name in
``partner_geslachtsnaam``/``partner_voorvoegsel`` and an ``naamgebruik``: one partner
E 60 % / P 15 % / V 15 % / N 10 %, the other E 95 % / P 2 % / V 2 % / N 1 %. Children
take one parent's surname (the second parent's 80 %). A fifth of the population bears
one of about a hundred common or difficult surnames (``SURNAMES``: voorvoegsels de, van,
van der, van den, ter, ten, 't, van 't, in 't ...; ss/s and ij/y pairs; double names
such as Tjeenk Willink and hyphenated ones; diacritics as in Çelik, Öztürk, Yılmaz,
Müller, Brontë), the rest one of a long tail of about 11,000 rare ones built from Dutch
stems and endings (``tail_surnames``), a quarter of them with a voorvoegsel. Jansen
comes out at about 0.8 % and the sum of squared surname shares at about 0.0008, close
to the BRP's: two unrelated people rarely share a surname. BSNs pass the elfproef and
are unique. About 1 % have a ``datum_overlijden`` and 2 % a ``datum_vertrek`` (both
between 2024 and 2026).

The creditor export (``notices.csv``) and its error model
---------------------------------------------------------
75 % of notices are about a registered adult (about 20 % of those are a repeat signal
for someone already signalled; deceased and departed persons are not excluded). The
other 25 % are about people NOT in the register: 30 % of those are *relatives at a
resident's address* (same surname and address as a resident, another given name and
birth date), the rest outsiders (random name, half in Amsterdam, half in neighbouring
towns). Categories: ZORG 52 %, HUUR 18 %, ENERGIE 16 %, DRINKWATER 9 %,
EINDELEVERING 5 %. Every error below is applied independently, at the rate given,
among notices where it can apply; the tag is what ``Dataset.notice_errors`` records.
The ``voornamen`` column is drawn from a random stream of its own, so every other
column is the same as it would be without it.

============================ ======= ====================================================
tag                          rate    what the creditor got wrong (or merely different)
============================ ======= ====================================================
name_in_use                  80 %    naamgebruik P/V/N: the name in use, not the birth
                                     name: P partner's name; V "partner-own" (voorvoegsel
                                     of the partner, achternaam "Dijk-de Vries");
                                     N "own-partner"
partner_name_informal        3 %     naamgebruik E but married: partner's surname used
voorvoegsel_glued            12 %    voorvoegsel put in achternaam ("van der Meer", half
                                     of them capitalised "Van der Meer"), column empty
voorvoegsel_dropped          6 %     voorvoegsel lost altogether
ss_s                         25 %    "ss" <-> "s" (Janssen/Jansen, ...sen -> ...ssen)
ij_y                         25 %    "ij" <-> "y" (Dijkstra/Dykstra, Meijer/Meyer)
diacritics_lost              50 %    names with diacritics written in plain ASCII
typo                         3 %     one-letter typo in achternaam (substitute, delete,
                                     insert or swap)
first_initial_only           20 %    voorletters has only the first initial ("J." for
                                     "J.P."); voorletters is always initials, never names
birth_date_missing           cat.    ZORG 1 %, HUUR 10 %, ENERGIE 25 %, DRINKWATER 30 %,
                                     EINDELEVERING 25 %
birth_date_day_month         1 %     day and month swapped (only when both <= 12)
old_address                  5 %     moved house: an older (different) address
huisletter_missing           30 %    huisletter present in the BRP, absent here
toevoeging_missing           30 %    huisnummertoevoeging present in the BRP, absent here
postcode_space               20 %    postcode written "1011 AB" (harmless formatting)
woonplaats_upper             10 %    woonplaats in capitals (harmless formatting)
zorg_bsn                     40 %    ZORG only: the BSN column filled (the true BSN; for
                                     people not in the register a valid BSN that is in
                                     no register row)
(voornamen kept)             cat.    voornamen filled where the creditor keeps given
                                     names in full: ZORG 90 %, HUUR 80 %, ENERGIE 50 %,
                                     DRINKWATER 30 %, EINDELEVERING 50 %; the first
                                     given name alone, all of them (a quarter), or one
                                     of the two call names below
call_name_other              3 %     a name the BRP does not list (a call name such as
                                     "Kees" for Cornelis): another name of the pool
call_name_second             10 %    with two given names or more: the second alone
given_diacritics_lost        50 %    given names with diacritics written in plain ASCII
given_typo                   3 %     one-letter typo in voornamen
relative_at_address          (7.5%)  not in the register, same surname and address as a
                                     resident (30 % of the 25 % not registered)
not_in_register              (25 %)  truth bsn empty
============================ ======= ====================================================

Other columns: ``ref`` N-000001..., ``bedrag`` euros with a decimal point per category,
``ontstaansdatum`` and ``signaaldatum`` in 2026 (arrears arise before the signal);
``stage`` vroeg/aanmaning/dagvaarding/vonnis, ``ontruiming`` (HUUR) and ``afsluiting``
(energy, water; always for EINDELEVERING, where stage_date is the end of supply) with a
``stage_date``; ``telefoon`` and ``email`` sometimes empty; ``klantnummer`` stable per
person and creditor category. ``truth.csv`` is ``ref,bsn``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from random import Random

BRP_HEADER = (
    "bsn,geslachtsnaam,voorvoegsel,voornamen,naamgebruik,partner_geslachtsnaam,"
    "partner_voorvoegsel,geboortedatum,postcode,huisnummer,huisletter,huisnummertoevoeging,"
    "woonplaats,gemeentecode,wijkcode,huishouden_id,datum_overlijden,datum_vertrek"
).split(",")
NOTICES_HEADER = (
    "ref,category,achternaam,voorvoegsel,voorletters,geboortedatum,straat,huisnummer,"
    "huisletter,huisnummertoevoeging,postcode,woonplaats,telefoon,email,bedrag,"
    "ontstaansdatum,signaaldatum,bsn,stage,stage_date,klantnummer,voornamen"
).split(",")
TRUTH_HEADER = ["ref", "bsn"]

# (voorvoegsel, geslachtsnaam, weight)
SURNAMES: list[tuple[str, str, int]] = [
    ("", "Jansen", 30),
    ("", "Janssen", 20),
    ("de", "Jong", 28),
    ("de", "Vries", 27),
    ("van den", "Berg", 20),
    ("van", "Dijk", 20),
    ("", "Bakker", 20),
    ("", "Visser", 18),
    ("", "Smit", 18),
    ("", "Meijer", 16),
    ("", "Meyer", 4),
    ("de", "Boer", 16),
    ("", "Mulder", 15),
    ("de", "Groot", 15),
    ("", "Bos", 14),
    ("", "Vos", 13),
    ("", "Peters", 13),
    ("", "Hendriks", 13),
    ("", "Hendriksen", 5),
    ("van", "Leeuwen", 12),
    ("", "Dekker", 12),
    ("", "Brouwer", 12),
    ("de", "Wit", 11),
    ("", "Dijkstra", 11),
    ("", "Dykstra", 3),
    ("", "Smits", 10),
    ("de", "Graaf", 10),
    ("van der", "Meer", 10),
    ("van der", "Linden", 9),
    ("", "Kok", 9),
    ("", "Jacobs", 9),
    ("de", "Haan", 9),
    ("", "Vermeulen", 9),
    ("van den", "Heuvel", 8),
    ("van der", "Veen", 8),
    ("van den", "Broek", 8),
    ("de", "Bruijn", 8),
    ("de", "Bruin", 6),
    ("van der", "Heijden", 8),
    ("", "Schouten", 7),
    ("van", "Beek", 7),
    ("", "Willems", 7),
    ("van", "Vliet", 7),
    ("van de", "Ven", 7),
    ("", "Hoekstra", 7),
    ("", "Maas", 7),
    ("", "Verhoeven", 6),
    ("", "Koster", 6),
    ("van", "Dam", 6),
    ("van der", "Wal", 6),
    ("", "Prins", 6),
    ("", "Blom", 6),
    ("", "Huisman", 6),
    ("", "Mathijssen", 3),
    ("", "Matthijsen", 2),
    ("ter", "Horst", 4),
    ("ten", "Bosch", 3),
    ("'t", "Hart", 4),
    ("'t", "Hooft", 2),
    ("van 't", "Hof", 3),
    ("in 't", "Veld", 3),
    ("van", "Rossum", 4),
    ("", "Kuijpers", 5),
    ("", "Kuypers", 2),
    ("", "Rijnders", 3),
    ("", "Gerritsen", 5),
    ("", "Timmermans", 5),
    ("", "Postma", 5),
    ("de", "Ruiter", 5),
    ("van", "Wijk", 5),
    ("", "Çelik", 6),
    ("", "Öztürk", 6),
    ("", "Yılmaz", 7),
    ("", "Şahin", 4),
    ("", "Doğan", 4),
    ("", "Kılıç", 3),
    ("", "Aydın", 4),
    ("", "Koç", 3),
    ("", "Güneş", 2),
    ("", "Müller", 4),
    ("", "Brontë", 1),
    ("", "Hüsken", 2),
    ("", "Roëll", 1),
    ("", "Ünal", 2),
    ("", "Ramdin", 3),
    ("", "Sewnath", 2),
    ("", "Pinas", 3),
    ("", "Kartosen", 2),
    ("el", "Idrissi", 4),
    ("", "El Amrani", 3),
    ("", "Bouzid", 4),
    ("", "Ben Ali", 3),
    ("", "Tjeenk Willink", 1),
    ("van", "Voorst tot Voorst", 1),
    ("", "García López", 1),
    ("", "Sánchez Pérez", 1),
    ("", "Nguyễn", 2),
    ("", "Janssen-Smit", 1),
    ("", "Vos-de Wit", 1),
    ("", "Kaya", 4),
    ("", "Amrani", 3),
]
NAMED_SHARE = 0.2
"""The share of the population bearing one of ``SURNAMES``; the rest bear ``tail_surnames``."""

TAIL_STEMS = (
    "Aal", "Bak", "Beu", "Bie", "Bij", "Blo", "Bree", "Brug", "Dam", "Dek", "Dui", "Eek",
    "Elz", "Gel", "Gro", "Haa", "Hee", "Hoo", "Hui", "Kap", "Kee", "Kle", "Koe", "Kui",
    "Lam", "Lee", "Loo", "Maa", "Mee", "Mol", "Noo", "Oos", "Pol", "Pos", "Raa", "Rij",
    "Roo", "Schu", "Sla", "Smi", "Sne", "Spr", "Ste", "Stra", "Tee", "Tim", "Uit", "Vel",
    "Ver", "Vle", "Waa", "Wee", "Wes", "Wil", "Zee", "Zij", "Zwa", "Hol", "Ter", "Wij",
)  # fmt: skip
TAIL_SUFFIXES = (
    "man", "mans", "ma", "sma", "stra", "inga", "ink", "kamp", "horst", "huis", "veld",
    "berg", "beek", "broek", "dijk", "hof", "hout", "er", "ers", "sen", "ssen", "s",
    "kes", "ert", "el", "els", "ens", "werf", "meijer", "wijk", "hoven", "laar", "land",
    "vliet", "boom", "stein", "ing", "ink", "gers", "ven",
)  # fmt: skip
TAIL_VOORVOEGSELS = (("van", 10), ("de", 6), ("van der", 3), ("van den", 3), ("ter", 1))
"""A quarter of the tail carries a voorvoegsel, by these weights."""


def tail_surnames() -> list[tuple[str, str]]:
    """The long tail: every stem with every suffix, alone and after each voorvoegsel
    (about 11,000 surnames, each rare), so that two unrelated people rarely share a
    surname, as in the BRP; ``SURNAMES`` holds the common and the difficult ones."""
    cores = sorted(
        {(stem + suffix).capitalize() for stem in TAIL_STEMS for suffix in TAIL_SUFFIXES}
    )
    return [("", core) for core in cores] + [
        (vv, core) for vv, _ in TAIL_VOORVOEGSELS for core in cores
    ]


MALE = [
    "Jan",
    "Pieter",
    "Johannes",
    "Hendrik",
    "Cornelis",
    "Willem",
    "Daan",
    "Sem",
    "Lucas",
    "Finn",
    "Noah",
    "Mohamed",
    "Ahmed",
    "Youssef",
    "Mehmet",
    "Emre",
    "René",
    "André",
    "Jérôme",
    "Gerrit",
    "Kees",
    "Bram",
    "Thijs",
    "Ruben",
    "Joost",
    "Marco",
    "Anıl",
    "Sven",
    "Luuk",
    "Mustafa",
    "Rachid",
    "Stefan",
    "Dirk",
    "Jeroen",
    "Rajesh",
    "Kevin",
]
FEMALE = [
    "Anna",
    "Maria",
    "Johanna",
    "Emma",
    "Julia",
    "Sophie",
    "Fatima",
    "Aïcha",
    "Zoë",
    "Chloë",
    "Noëlle",
    "Ayşe",
    "Elif",
    "Hélène",
    "Françoise",
    "Sanne",
    "Lotte",
    "Fleur",
    "Iris",
    "Anouk",
    "Femke",
    "Ingrid",
    "Petra",
    "Saskia",
    "Nadia",
    "Yasmina",
    "Büşra",
    "Esther",
    "Marloes",
    "Eva",
    "Lieke",
    "Naima",
    "Priya",
    "Wilhelmina",
    "Ilse",
    "Sara",
]
STREETS = [
    "Damrak",
    "Rokin",
    "Prinsengracht",
    "Keizersgracht",
    "Herengracht",
    "Singel",
    "Kinkerstraat",
    "Bilderdijkstraat",
    "Overtoom",
    "Ferdinand Bolstraat",
    "Van Woustraat",
    "Javastraat",
    "Dapperstraat",
    "Linnaeusstraat",
    "Middenweg",
    "Kastelenstraat",
    "Bos en Lommerweg",
    "Jan Evertsenstraat",
    "Osdorpplein",
    "Meer en Vaart",
    "Buikslotermeerplein",
    "Van der Pekstraat",
    "Kamperfoelieweg",
    "Nieuwendammerdijk",
    "Bijlmerdreef",
    "Ganzenhoef",
    "Kraaiennest",
    "Holendrecht",
    "Gaasperdammerweg",
    "Beethovenstraat",
    "Minervalaan",
    "Stadionweg",
    "Van Baerlestraat",
    "De Clercqstraat",
    "Admiraal de Ruijterweg",
    "Haarlemmerweg",
    "Spaarndammerstraat",
    "IJburglaan",
    "Pampuslaan",
    "Zeeburgerdijk",
    "Czaar Peterstraat",
    "Wibautstraat",
    "Amstelveenseweg",
]
# Postcode ranges of stadsdelen (roughly): first pc4 of the range -> stadsdeel letter.
STADSDELEN = [(1011, "A"), (1019, "M"), (1020, "N"), (1040, "B"), (1050, "E"),
              (1060, "F"), (1070, "K"), (1084, "M"), (1100, "T")]  # fmt: skip
ELSEWHERE = [("Amstelveen", 1181, 1187), ("Diemen", 1111, 1113), ("Zaandam", 1501, 1509),
             ("Haarlem", 2011, 2037), ("Almere", 1311, 1365)]  # fmt: skip
LETTERS = "ABCDEGHJKLMNPRSTVWXZ"
TOEVOEGINGEN = ["H", "1", "2", "3", "4", "I", "II", "III", "hs", "bis"]
CATEGORIES = [("ZORG", 52), ("HUUR", 18), ("ENERGIE", 16), ("DRINKWATER", 9),
              ("EINDELEVERING", 5)]  # fmt: skip
BEDRAG = {"ZORG": (280, 1600), "HUUR": (600, 5200), "ENERGIE": (150, 2400),
          "DRINKWATER": (40, 450), "EINDELEVERING": (200, 2800)}  # fmt: skip
BIRTH_MISSING = {"ZORG": 0.01, "HUUR": 0.10, "ENERGIE": 0.25, "DRINKWATER": 0.30,
                 "EINDELEVERING": 0.25}  # fmt: skip
GIVEN_NAMES_KEPT = {"ZORG": 0.9, "HUUR": 0.8, "ENERGIE": 0.5, "DRINKWATER": 0.3,
                    "EINDELEVERING": 0.5}  # fmt: skip
EMAIL_DOMAINS = ["gmail.com", "hotmail.com", "outlook.com", "ziggo.nl", "kpnmail.nl"]

_DUTCH_Y = re.compile(r"(?<=[b-df-hj-np-tv-zBDFHJ-NP-TV-Zeu])y")  # Meyer, Dykstra, Kuypers
_ASCII = str.maketrans({"ı": "i", "İ": "I", "ø": "o", "Ø": "O", "ß": "ss", "đ": "d"})

D2024 = date(2024, 1, 1).toordinal()
D2026 = date(2026, 1, 1).toordinal()
D2026_END = date(2026, 12, 31).toordinal()


def strip_diacritics(text: str) -> str:
    """Plain ASCII: Çelik -> Celik, Yılmaz -> Yilmaz, Brontë -> Bronte."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def elfproef(bsn: str) -> bool:
    """The BSN eleven test: d1*9 + ... + d8*2 - d9 == 0 (mod 11), nine digits, not 0."""
    if len(bsn) != 9 or not bsn.isdigit() or bsn == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(bsn[:8], range(9, 1, -1), strict=True))
    return (total - int(bsn[8])) % 11 == 0


@dataclass
class Dataset:
    brp: list[list[str]]
    notices: list[list[str]]
    truth: list[list[str]]
    notice_errors: list[list[str]] = field(default_factory=list)  # tags per notice

    def counts(self) -> dict[str, object]:
        tags = Counter(t for ts in self.notice_errors for t in ts)
        return {
            "persons": len(self.brp),
            "households": len({r[15] for r in self.brp}),
            "deceased": sum(1 for r in self.brp if r[16]),
            "moved_out": sum(1 for r in self.brp if r[17]),
            "notices": len(self.notices),
            "in_register": sum(1 for r in self.truth if r[1]),
            "not_in_register": sum(1 for r in self.truth if not r[1]),
            "categories": dict(Counter(r[1] for r in self.notices).most_common()),
            "errors": dict(sorted(tags.items())),
        }


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = Random(seed)
        # The voornamen column draws from a stream of its own, so the rest of a data
        # set is the same as without it.
        self.given_rng = Random(f"{seed}-voornamen")
        self.bsns: set[str] = set()
        self.addresses: set[tuple[str, str, str, str]] = set()
        self.sur = [(v, n) for v, n, _ in SURNAMES]
        self.sur_cum = _cumulative([w for _, _, w in SURNAMES])
        self.tail = tail_surnames()
        plain = len(self.tail) // (len(TAIL_VOORVOEGSELS) + 1)
        total_vv = sum(w for _, w in TAIL_VOORVOEGSELS)
        # Three quarters without a voorvoegsel, one quarter with.
        weights = [3 * total_vv] * plain + [w for _, w in TAIL_VOORVOEGSELS for _ in range(plain)]
        self.tail_cum = _cumulative(weights)
        self.cats = [c for c, _ in CATEGORIES]
        self.cat_cum = _cumulative([w for _, w in CATEGORIES])

    # -- primitives -------------------------------------------------------------------
    def bsn(self) -> str:
        rng = self.rng
        while True:
            n = rng.randrange(10_000_000, 70_000_000)
            digits = f"{n:08d}"
            check = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
            if check == 10:
                continue
            bsn = digits + str(check)
            if bsn not in self.bsns:
                self.bsns.add(bsn)
                return bsn

    def surname(self) -> tuple[str, str]:
        if self.rng.random() < NAMED_SHARE:
            return self.rng.choices(self.sur, cum_weights=self.sur_cum)[0]
        return self.rng.choices(self.tail, cum_weights=self.tail_cum)[0]

    def voornamen(self, female: bool) -> str:
        rng = self.rng
        pool = FEMALE if female else MALE
        k = rng.choices((1, 2, 3), (45, 40, 15))[0]
        names: list[str] = []
        while len(names) < k:
            name = rng.choice(pool)
            if name not in names:
                names.append(name)
        return " ".join(names)

    def date_between(self, first: int, last: int) -> str:
        return date.fromordinal(self.rng.randint(first, last)).isoformat()

    def address(self, register: bool = True) -> tuple[str, str, str, str, str, str]:
        """(postcode, huisnummer, huisletter, toevoeging, straat, woonplaats)."""
        rng = self.rng
        while True:
            if register:
                pc4, town = rng.randint(1011, 1109), "Amsterdam"
            else:
                town, lo, hi = rng.choice(ELSEWHERE)
                pc4 = rng.randint(lo, hi)
            pair = rng.choice(LETTERS) + rng.choice(LETTERS)
            if pair in ("SA", "SD", "SS"):
                continue
            postcode = f"{pc4}{pair}"
            nummer = str(rng.randint(1, 1 if rng.random() < 0.02 else 320))
            letter = rng.choice("ABCD") if rng.random() < 0.08 else ""
            toev = rng.choice(TOEVOEGINGEN) if rng.random() < 0.20 else ""
            key = (postcode, nummer, letter, toev)
            if register and key in self.addresses:
                continue
            if register:
                self.addresses.add(key)
            street = STREETS[(pc4 * 31 + LETTERS.index(pair[0]) * 7) % len(STREETS)]
            return postcode, nummer, letter, toev, street, town

    # -- the register -----------------------------------------------------------------
    def register(self, persons: int) -> tuple[list[list[str]], list[dict[str, str]]]:
        rng = self.rng
        rows: list[list[str]] = []
        people: list[dict[str, str]] = []
        hh = 0
        adult_first = date(1935, 1, 1).toordinal()
        adult_last = date(2007, 12, 31).toordinal()
        while len(people) < persons:
            hh += 1
            hid = f"H{hh:07d}"
            size = rng.choices((1, 2, 3, 4, 5), (50, 25, 11, 10, 4))[0]
            couple = size >= 2 and rng.random() < 0.8
            postcode, nummer, letter, toev, street, _ = self.address()
            pc4 = int(postcode[:4])
            deel = next(d for start, d in reversed(STADSDELEN) if pc4 >= start)
            base = {"postcode": postcode, "huisnummer": nummer, "huisletter": letter,
                    "toevoeging": toev, "straat": street, "hid": hid,
                    "wijkcode": f"{deel}{pc4 % 9 + 1:02d}"}  # fmt: skip
            members: list[dict[str, str]] = []
            a_female = rng.random() < 0.5 if not couple else True
            a_vv, a_gn = self.surname()
            a = {**base, "vv": a_vv, "gn": a_gn, "vn": self.voornamen(a_female),
                 "gd": self.date_between(adult_first, adult_last), "ng": "E", "pvv": "",
                 "pgn": ""}  # fmt: skip
            members.append(a)
            if couple:
                b_female = rng.random() < 0.08
                b_vv, b_gn = self.surname()
                a_born = date.fromisoformat(a["gd"]).toordinal()
                b_born = min(adult_last, max(adult_first, a_born + rng.randint(-2500, 2500)))
                b = {**base, "vv": b_vv, "gn": b_gn, "vn": self.voornamen(b_female),
                     "gd": date.fromordinal(b_born).isoformat(), "ng": "E", "pvv": "",
                     "pgn": ""}  # fmt: skip
                members.append(b)
                if rng.random() < 0.6:  # married: partner names and naamgebruik
                    a["pvv"], a["pgn"], b["pvv"], b["pgn"] = b_vv, b_gn, a_vv, a_gn
                    a["ng"] = rng.choices("EPVN", (60, 15, 15, 10))[0]
                    b["ng"] = rng.choices("EPVN", (95, 2, 2, 1))[0]
                parent = b if rng.random() < 0.8 else a
            else:
                parent = a
            youngest_parent = max(date.fromisoformat(m["gd"]).toordinal() for m in members)
            first_child = youngest_parent + 20 * 365
            last_child = min(date(2025, 12, 31).toordinal(), youngest_parent + 45 * 365)
            while len(members) < size and first_child <= last_child:
                members.append(
                    {
                        **base,
                        "vv": parent["vv"],
                        "gn": parent["gn"],
                        "vn": self.voornamen(rng.random() < 0.5),
                        "gd": self.date_between(first_child, last_child),
                        "ng": "E",
                        "pvv": "",
                        "pgn": "",
                    }  # fmt: skip
                )
            for m in members[: persons - len(people)]:
                m["bsn"] = self.bsn()
                r = rng.random()
                m["overl"] = self.date_between(D2024, D2026_END - 60) if r < 0.01 else ""
                m["vertrek"] = self.date_between(D2024, D2026_END - 60) if r > 0.98 else ""
                people.append(m)
                rows.append(
                    [
                        m["bsn"],
                        m["gn"],
                        m["vv"],
                        m["vn"],
                        m["ng"],
                        m["pgn"],
                        m["pvv"],
                        m["gd"],
                        postcode,
                        nummer,
                        letter,
                        toev,
                        "Amsterdam",
                        "0363",
                        m["wijkcode"],
                        hid,
                        m["overl"],
                        m["vertrek"],
                    ]  # fmt: skip
                )
        return rows, people

    # -- the creditor's view ----------------------------------------------------------
    def render(self, p: dict[str, str], category: str, tags: list[str]) -> list[str]:
        """achternaam .. woonplaats columns of a notice for person p, with errors."""
        rng = self.rng
        vv, gn, vn = p["vv"], p["gn"], p["vn"]
        ng, pvv, pgn = p.get("ng", "E"), p.get("pvv", ""), p.get("pgn", "")
        if pgn and ng in "PVN" and rng.random() < 0.8:
            tags.append("name_in_use")
            own, partner = _join(vv, gn), _join(pvv, pgn)
            if ng == "P":
                vv, gn = pvv, pgn
            elif ng == "V":
                vv, gn = pvv, f"{pgn}-{own}"
            else:
                gn = f"{gn}-{partner}"
        elif pgn and ng == "E" and rng.random() < 0.03:
            tags.append("partner_name_informal")
            vv, gn = pvv, pgn
        if vv:
            r = rng.random()
            if r < 0.12:
                tags.append("voorvoegsel_glued")
                vv_text = vv[0].upper() + vv[1:] if r < 0.06 else vv
                vv, gn = "", f"{vv_text} {gn}"
            elif r < 0.18:
                tags.append("voorvoegsel_dropped")
                vv = ""
        if ("ss" in gn or gn.endswith("sen")) and rng.random() < 0.25:
            tags.append("ss_s")
            gn = gn.replace("ss", "s") if "ss" in gn else gn[:-3] + "ssen"
        if ("ij" in gn or _DUTCH_Y.search(gn)) and rng.random() < 0.25:
            tags.append("ij_y")
            gn = gn.replace("ij", "y") if "ij" in gn else _DUTCH_Y.sub("ij", gn)
        if not (gn + vn).isascii() and rng.random() < 0.5:
            tags.append("diacritics_lost")
            gn, vn = strip_diacritics(gn), strip_diacritics(vn)
        if rng.random() < 0.03 and len(gn) > 3:
            tags.append("typo")
            gn = _typo(rng, gn)
        initials = [w[0].upper() + "." for w in vn.split()]
        if len(initials) > 1 and rng.random() < 0.2:
            tags.append("first_initial_only")
            initials = initials[:1]
        gd = p["gd"]
        if rng.random() < BIRTH_MISSING[category]:
            tags.append("birth_date_missing")
            gd = ""
        elif rng.random() < 0.01 and int(gd[8:]) <= 12 and gd[5:7] != gd[8:]:
            tags.append("birth_date_day_month")
            gd = f"{gd[:4]}-{gd[8:]}-{gd[5:7]}"
        postcode, nummer, letter, toev, street = (
            p["postcode"], p["huisnummer"], p["huisletter"], p["toevoeging"], p["straat"]
        )  # fmt: skip
        town = p.get("woonplaats", "Amsterdam")
        if "bsn" in p and rng.random() < 0.05:
            tags.append("old_address")
            postcode, nummer, letter, toev, street, town = self.address(register=False)
            if rng.random() < 0.7:  # mostly a move within the city
                postcode, nummer, letter, toev, street, town = self.address()
        if letter and rng.random() < 0.3:
            tags.append("huisletter_missing")
            letter = ""
        if toev and rng.random() < 0.3:
            tags.append("toevoeging_missing")
            toev = ""
        if rng.random() < 0.2:
            tags.append("postcode_space")
            postcode = f"{postcode[:4]} {postcode[4:]}"
        if rng.random() < 0.1:
            tags.append("woonplaats_upper")
            town = town.upper()
        return [gn, vv, "".join(initials), gd, street, nummer, letter, toev, postcode, town]

    def given(self, p: dict[str, str], category: str, tags: list[str]) -> str:
        """The voornamen column of a notice for person p: empty where the creditor
        keeps initials only, else the given names as it keeps them."""
        rng = self.given_rng
        if rng.random() >= GIVEN_NAMES_KEPT[category]:
            return ""
        names = p["vn"].split()
        r = rng.random()
        if r < 0.03:
            tags.append("call_name_other")
            pool = FEMALE if names[0] in FEMALE else MALE
            names = [rng.choice([n for n in pool if n not in names])]
        elif len(names) > 1 and r < 0.13:
            tags.append("call_name_second")
            names = names[1:2]
        elif r < 0.75:
            names = names[:1]
        text = " ".join(names)
        if not text.isascii() and rng.random() < 0.5:
            tags.append("given_diacritics_lost")
            text = strip_diacritics(text)
        if rng.random() < 0.03 and len(text) > 3:
            tags.append("given_typo")
            text = _typo(rng, text)
        return text

    def contact(self, p: dict[str, str]) -> tuple[str, str]:
        rng = self.rng
        phone = ""
        if rng.random() < 0.7:
            n = rng.randrange(10_000_000, 100_000_000)
            phone = f"06-{n}" if rng.random() < 0.6 else f"+316{n}"
        email = ""
        if rng.random() < 0.6:
            first = strip_diacritics(p["vn"].split()[0]).lower()
            last = strip_diacritics(_join(p["vv"], p["gn"])).lower()
            last = "".join(c for c in last if c.isalnum())
            email = f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(EMAIL_DOMAINS)}"
        return phone, email

    def relative(self, resident: dict[str, str], members: list[dict[str, str]]) -> dict[str, str]:
        """Someone living at a resident's address, same surname, not in the register."""
        rng = self.rng
        taken = {m["vn"].split()[0] for m in members}
        while True:
            vn = self.voornamen(rng.random() < 0.5)
            if vn.split()[0] not in taken:
                break
        gd = resident["gd"]
        while gd == resident["gd"] or any(gd == m["gd"] for m in members):
            gd = self.date_between(date(1950, 1, 1).toordinal(), date(2007, 12, 31).toordinal())
        keys = ("postcode", "huisnummer", "huisletter", "toevoeging", "straat")
        return {"vv": resident["vv"], "gn": resident["gn"], "vn": vn, "gd": gd,
                **{k: resident[k] for k in keys}}  # fmt: skip

    def outsider(self) -> dict[str, str]:
        rng = self.rng
        vv, gn = self.surname()
        postcode, nummer, letter, toev, street, town = self.address(register=False)
        if rng.random() < 0.5:
            postcode, nummer, letter, toev, street, town = self.address()
        return {"vv": vv, "gn": gn, "vn": self.voornamen(rng.random() < 0.5),
                "gd": self.date_between(date(1940, 1, 1).toordinal(),
                                        date(2007, 12, 31).toordinal()),
                "postcode": postcode, "huisnummer": nummer, "huisletter": letter,
                "toevoeging": toev, "straat": street, "woonplaats": town}  # fmt: skip

    def notices(self, people: list[dict[str, str]], count: int) -> tuple[list, list, list]:
        rng = self.rng
        cutoff = date(2008, 1, 1).isoformat()
        adults = [p for p in people if p["gd"] < cutoff]
        households: dict[str, list[dict[str, str]]] = {}
        for p in people:
            households.setdefault(p["hid"], []).append(p)
        signalled: list[dict[str, str]] = []
        # Keyed by the person object's id; the value keeps the object alive, so an id is
        # never reused by a later person (that would make the output depend on memory).
        klant: dict[tuple[int, str], tuple[object, str]] = {}
        notices, truth, errors = [], [], []
        for i in range(1, count + 1):
            ref = f"N-{i:06d}"
            category = rng.choices(self.cats, cum_weights=self.cat_cum)[0]
            tags: list[str] = []
            r = rng.random()
            if r < 0.75:
                if signalled and rng.random() < 0.2:
                    p = rng.choice(signalled)
                else:
                    p = rng.choice(adults)
                    signalled.append(p)
                true_bsn = p["bsn"]
            else:
                tags.append("not_in_register")
                if r < 0.825:
                    tags.append("relative_at_address")
                    resident = rng.choice(adults)
                    p = self.relative(resident, households[resident["hid"]])
                else:
                    p = self.outsider()
                true_bsn = ""
            cols = self.render(p, category, tags)
            given = self.given(p, category, tags)
            phone, email = self.contact(p)
            bsn = ""
            if category == "ZORG" and rng.random() < 0.4:
                tags.append("zorg_bsn")
                bsn = true_bsn or self.bsn()
            signal = rng.randint(date(2026, 3, 1).toordinal(), date(2026, 11, 30).toordinal())
            arose = max(D2026, signal - rng.randint(30, 180))
            stage, stage_date = self.stage(category, signal)
            lo, hi = BEDRAG[category]
            bedrag = f"{rng.randint(lo * 100, hi * 100) / 100:.2f}"
            key = (id(p), category)
            if key not in klant:
                klant[key] = (p, f"{category[:2]}{rng.randrange(10**8):08d}")
            notices.append(
                [
                    ref,
                    category,
                    *cols[:8],
                    cols[8],
                    cols[9],
                    phone,
                    email,
                    bedrag,
                    date.fromordinal(arose).isoformat(),
                    date.fromordinal(signal).isoformat(),
                    bsn,
                    stage,
                    stage_date,
                    klant[key][1],
                    given,
                ]  # fmt: skip
            )
            truth.append([ref, true_bsn])
            errors.append(tags)
        return notices, truth, errors

    def stage(self, category: str, signal: int) -> tuple[str, str]:
        rng = self.rng
        later = (date.fromordinal(min(D2026_END, signal + rng.randint(28, 60)))).isoformat()
        if category == "EINDELEVERING":
            return "afsluiting", later
        r = rng.random()
        if r < 0.55:
            return "vroeg", ""
        if r < 0.80:
            return "aanmaning", ""
        if r < 0.88:
            return "dagvaarding", ""
        if r < 0.93:
            return "vonnis", ""
        if category == "HUUR":
            return "ontruiming", later
        if category in ("ENERGIE", "DRINKWATER"):
            return "afsluiting", later
        return "aanmaning", ""


def _cumulative(weights: list[int]) -> list[int]:
    out, total = [], 0
    for w in weights:
        total += w
        out.append(total)
    return out


def _join(vv: str, gn: str) -> str:
    return f"{vv} {gn}" if vv else gn


def _typo(rng: Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    letter = rng.choice("aeiouklmnrst")
    if kind == 0:
        return word[:i] + letter + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + letter + word[i:]
    if word[i] == word[i + 1]:
        return word[:i] + letter + word[i + 1 :]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def generate(persons: int, notices: int, seed: int) -> Dataset:
    """A register of ``persons`` people, ``notices`` creditor notices and the truth."""
    gen = _Gen(seed)
    brp, people = gen.register(persons)
    rows, truth, errors = gen.notices(people, notices)
    return Dataset(brp=brp, notices=rows, truth=truth, notice_errors=errors)


def write(dataset: Dataset, directory: str | Path) -> None:
    """Write brp.csv, notices.csv and truth.csv (UTF-8, header row, LF line ends)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, header, rows in (
        ("brp.csv", BRP_HEADER, dataset.brp),
        ("notices.csv", NOTICES_HEADER, dataset.notices),
        ("truth.csv", TRUTH_HEADER, dataset.truth),
    ):
        with (out / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--notices", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    dataset = generate(args.persons, args.notices, args.seed)
    write(dataset, args.out)
    result = {**dataset.counts(), "seconds": round(time.perf_counter() - start, 2)}
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
