"""Which municipality a resident lives in, from the postcode (the adapter decides).

A creditor's home may hold ``postcodes.json`` ({"0363": [[1000, 1109]], ...}: CBS code to
ranges of the four postcode digits); without it the demo's Amsterdam ranges apply.
"""

from __future__ import annotations

import json
from pathlib import Path

AMSTERDAM = "0363"
DEMO_RANGES: dict[str, list[tuple[int, int]]] = {AMSTERDAM: [(1000, 1109)]}


class PostcodeTable:
    """Maps a normalised postcode (``1234AB``) to a CBS municipality code."""

    def __init__(self, ranges: dict[str, list[tuple[int, int]]]) -> None:
        self._ranges = [(lo, hi, code) for code, rs in ranges.items() for lo, hi in rs]

    @classmethod
    def for_home(cls, home: Path) -> PostcodeTable:
        path = home / "postcodes.json"
        if not path.exists():
            return cls(DEMO_RANGES)
        doc = json.loads(path.read_text())
        return cls({code: [(int(lo), int(hi)) for lo, hi in rs] for code, rs in doc.items()})

    def gemeente(self, postcode: str) -> str | None:
        digits = int(postcode[:4])
        return next((code for lo, hi, code in self._ranges if lo <= digits <= hi), None)
