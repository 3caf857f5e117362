"""The team client: open the signals routed to this team with its own key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keys.contact import open_contact
from keys.home import PartyHome

# contact block field -> the CSV profile's column name, as teams see them.
CSV_FROM_CONTACT = {
    "straatnaam": "straat",
    "plaatsnaam": "woonplaats",
}


class Team:
    """An outreach team or the back office, with only its own home."""

    def __init__(self, home: PartyHome, *, now: datetime) -> None:
        self.identity = home.identity()
        self._keys = home.keyring().accepted("enc", now=now)

    def open(self, signal: dict[str, Any]) -> dict[str, Any]:
        """One signal as a flat record: facts, routing and the opened contact fields."""
        contact = open_contact(signal["contact"], keys=self._keys, jti=signal["jti"])
        record = {k: v for k, v in signal.items() if k != "contact"}
        for field, value in contact.items():
            record[CSV_FROM_CONTACT.get(field, field)] = value
        return record
