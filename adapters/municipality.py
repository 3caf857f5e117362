"""The municipality's register office: its outreach key set and the linkage secret."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from keys.home import PartyHome
from keys.jwk import PublicKey
from keys.keyring import write_private
from keys.outreach import OutreachRecipient, sign_outreach_keyset
from keys.tokens import LinkageSecret
from keys.transfer import seal_secret

LINKAGE_FILE = "linkage.json"


class Municipality:
    """The register office, with only its own home."""

    def __init__(self, home: PartyHome) -> None:
        self.home = home
        self.identity = home.identity()
        if self.identity.gemeente is None:
            raise ValueError("a municipality's home names its gemeente")
        self.gemeente: str = self.identity.gemeente

    def create_linkage_secret(self, *, now: datetime) -> LinkageSecret:
        """A fresh linkage secret, kept in this home only (mode 0600)."""
        secret = LinkageSecret.generate(now=now)
        write_private(self.home.secrets_dir / LINKAGE_FILE, json.dumps(secret.to_dict()).encode())
        return secret

    def linkage_secret(self) -> LinkageSecret:
        doc = json.loads((self.home.secrets_dir / LINKAGE_FILE).read_text())
        return LinkageSecret.from_dict(doc)

    def issue_linkage_secret(self, creditor_key: PublicKey, *, now: datetime) -> str:
        """The linkage secret, signed by us and sealed to one creditor's encryption key."""
        signer = self.home.keyring().current("sig", now=now)
        return seal_secret(self.linkage_secret(), signer=signer, recipient=creditor_key)

    def sign_keyset(self, recipients: Sequence[OutreachRecipient], *, now: datetime) -> str:
        """Sign the set of our teams' encryption keys."""
        return sign_outreach_keyset(
            gemeente=self.gemeente,
            issuer=self.identity.oin,
            recipients=recipients,
            signer=self.home.keyring().current("sig", now=now),
            now=now,
        )
