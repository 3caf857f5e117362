"""A party's home directory: its identity, its own keys, and what it has pinned.

    HOME/party.json          who this party is (name, role, OIN, municipality)
    HOME/keys/keyring.json   its private keys and their lifecycle (0600)
    HOME/tls/                its TLS certificate and key, and the CA it trusts
    HOME/pins/               public keys it pinned at enrolment
    HOME/secrets/            sealed secrets handed to it (e.g. a linkage secret)

Nothing in one party's home is meant to be readable by another party.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from keys.errors import KeyringError
from keys.jwk import OIN, PublicKey, public_keys_from_jwks
from keys.keyring import Keyring

Role = Literal["gateway", "creditor", "municipality", "team", "backoffice", "ca"]
ENV_HOME = "SIGNAALPOORT_HOME"
DEFAULT_HOME = Path(".signaalpoort")


@dataclass(frozen=True)
class Identity:
    """Who a party is: the public facts in ``party.json``."""

    name: str
    role: Role
    oin: OIN
    gemeente: str | None = None
    category: str | None = None


class PartyHome:
    """The files of one party."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def resolve(cls, path: Path | None) -> PartyHome:
        """``--home``, else ``$SIGNAALPOORT_HOME``, else ``./.signaalpoort``."""
        if path is None:
            env = os.environ.get(ENV_HOME)
            path = Path(env) if env else DEFAULT_HOME
        return cls(path)

    @property
    def keyring_path(self) -> Path:
        return self.path / "keys" / "keyring.json"

    @property
    def tls_dir(self) -> Path:
        return self.path / "tls"

    @property
    def pins_dir(self) -> Path:
        return self.path / "pins"

    @property
    def secrets_dir(self) -> Path:
        return self.path / "secrets"

    def create(self, identity: Identity) -> None:
        """Make the home (mode 0700) and write ``party.json``."""
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        (self.path / "party.json").write_text(json.dumps(asdict(identity), indent=2) + "\n")

    def identity(self) -> Identity:
        try:
            doc = json.loads((self.path / "party.json").read_text())
            return Identity(**doc)
        except FileNotFoundError as exc:
            raise KeyringError(f"{self.path} is not a party home (no party.json)") from exc
        except (ValueError, TypeError) as exc:
            raise KeyringError(f"{self.path}/party.json is malformed") from exc

    def keyring(self) -> Keyring:
        return Keyring.from_file(self.keyring_path)

    def save_keyring(self, keyring: Keyring) -> None:
        keyring.save(self.keyring_path)

    def pin(self, name: str, keys: list[PublicKey]) -> None:
        """Pin public keys learnt at enrolment (e.g. the municipality's signing key)."""
        self.pins_dir.mkdir(parents=True, exist_ok=True)
        doc = {"keys": [k.jwk for k in keys]}
        (self.pins_dir / f"{name}.jwks.json").write_text(json.dumps(doc, indent=2) + "\n")

    def pinned(self, name: str) -> list[PublicKey]:
        try:
            return public_keys_from_jwks((self.pins_dir / f"{name}.jwks.json").read_bytes())
        except FileNotFoundError as exc:
            raise KeyringError(f"nothing pinned as {name!r} in this home") from exc

    def published_keys(self, *, now: datetime) -> list[PublicKey]:
        """The public keys this party publishes now."""
        return self.keyring().published(now=now)
