"""The team client: open the signals routed to this team with its own key."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TextIO

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
        """One signal as a flat record: facts, routing and the opened contact fields.

        A withdrawal (the creditor took the signal back) carries no contact block.
        """
        if "contact" not in signal:
            return dict(signal)
        contact = open_contact(signal["contact"], keys=self._keys, jti=signal["jti"])
        record = {k: v for k, v in signal.items() if k != "contact"}
        for field, value in contact.items():
            record[CSV_FROM_CONTACT.get(field, field)] = value
        return record


def pull_to_file(team: Team, client: Inbox, out: TextIO, *, page: int = 100) -> int:
    """Pull every waiting signal, write one JSON line each (with its inbox ``id``, which
    ``inbox resolve`` takes), and acknowledge page by page.

    A page is acknowledged only after its lines are written and flushed to disk, so a
    crash loses nothing: the worst case is a page pulled twice.
    """
    written, after = 0, 0
    while True:
        answer = client.inbox(after=after, limit=page)
        items = answer["items"]
        if not items:
            return written
        for item in items:
            record = {"id": item["id"], **team.open(item["signal"])}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())
        client.ack([item["id"] for item in items])
        written += len(items)
        after = answer["next"]


class Inbox(Protocol):
    """What the team client needs of its connection to the gateway."""

    def inbox(self, *, after: int = 0, limit: int = 100) -> dict[str, Any]: ...

    def ack(self, ids: Sequence[int]) -> int: ...
