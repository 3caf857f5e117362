"""A party's own keys and their lifecycle: rotation with overlap, and revocation.

A key's state follows from its timestamps and the clock, so nothing has to run at the
moment a key changes state:

- *published* from creation until it retires or is revoked (partners learn it early);
- *in use* (signs, or is the key partners encrypt to) once ``activates`` has passed,
  the newest such key winning;
- *accepted* (verifies, decrypts) while published;
- *revoked*: refused at once, never published again.

``rotate`` adds a key that activates after ``overlap``; the key it replaces retires
``retire_after`` later, so in-flight messages still open.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keys.errors import KeyringError
from keys.jwk import USES, KeyID, PrivateKey, PublicKey, Use

DEFAULT_RETIRE_AFTER = timedelta(days=30)


@dataclass(frozen=True)
class KeyEntry:
    """One key with its lifecycle timestamps."""

    key: PrivateKey
    created: datetime
    activates: datetime
    retires: datetime | None = None
    revoked: datetime | None = None

    @property
    def kid(self) -> KeyID:
        return self.key.kid

    @property
    def use(self) -> Use:
        return self.key.use

    def state(self, now: datetime) -> str:
        """``revoked``, ``retired``, ``next``, or ``active``."""
        if self.revoked is not None and self.revoked <= now:
            return "revoked"
        if self.retires is not None and self.retires <= now:
            return "retired"
        if self.activates > now:
            return "next"
        return "active"

    def accepted(self, now: datetime) -> bool:
        return self.state(now) in ("next", "active")


class Keyring:
    """The private keys of one party, as kept in ``HOME/keys/keyring.json``."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self._entries = list(entries)

    @classmethod
    def generate(cls, *, now: datetime, uses: tuple[Use, ...] = USES) -> Keyring:
        """A keyring with one fresh key per use, active from ``now``."""
        return cls([KeyEntry(PrivateKey.generate(u), created=now, activates=now) for u in uses])

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise KeyringError(f"no keyring at {path}") from exc
        except ValueError as exc:
            raise KeyringError(f"keyring at {path} is not JSON") from exc
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> Keyring:
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise KeyringError("a keyring needs a keys array")
        entries = []
        for item in doc["keys"]:
            try:
                entries.append(
                    KeyEntry(
                        key=PrivateKey.from_jwk(item["jwk"]),
                        created=_time(item["created"]),
                        activates=_time(item["activates"]),
                        retires=_opt_time(item.get("retires")),
                        revoked=_opt_time(item.get("revoked")),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise KeyringError("a keyring entry is malformed") from exc
        return cls(entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": [
                {
                    "jwk": e.key.to_jwk(),
                    "created": e.created.isoformat(),
                    "activates": e.activates.isoformat(),
                    "retires": e.retires.isoformat() if e.retires else None,
                    "revoked": e.revoked.isoformat() if e.revoked else None,
                }
                for e in self._entries
            ]
        }

    def save(self, path: Path) -> None:
        """Write atomically, readable by the owner only."""
        write_private(path, json.dumps(self.to_dict(), indent=2).encode())

    def __iter__(self) -> Iterator[KeyEntry]:
        return iter(self._entries)

    def entry(self, kid: str) -> KeyEntry:
        for e in self._entries:
            if e.kid == kid:
                return e
        raise KeyringError(f"no key {kid} in this keyring")

    def current(self, use: Use, *, now: datetime) -> PrivateKey:
        """The key in use: the newest active one."""
        active = [e for e in self._entries if e.use == use and e.state(now) == "active"]
        if not active:
            raise KeyringError(f"no active {use} key")
        return max(active, key=lambda e: (e.activates, e.created)).key

    def accepted(self, use: Use, *, now: datetime) -> list[PrivateKey]:
        """Keys that still open or verify: published and not revoked."""
        return [e.key for e in self._entries if e.use == use and e.accepted(now)]

    def published(self, *, now: datetime) -> list[PublicKey]:
        """The public keys partners should know now."""
        return [e.key.public() for e in self._entries if e.accepted(now)]

    def rotate(
        self,
        use: Use,
        *,
        now: datetime,
        overlap: timedelta = timedelta(0),
        retire_after: timedelta = DEFAULT_RETIRE_AFTER,
    ) -> KeyEntry:
        """Add a key that takes over after ``overlap``; the current one retires later."""
        new = KeyEntry(PrivateKey.generate(use), created=now, activates=now + overlap)
        retire_at = new.activates + retire_after
        self._entries = [
            replace(e, retires=retire_at)
            if e.use == use and e.accepted(now) and (e.retires is None or e.retires > retire_at)
            else e
            for e in self._entries
        ]
        self._entries.append(new)
        return new

    def revoke(self, kid: str, *, now: datetime) -> KeyEntry:
        """Refuse a key from now on."""
        entry = self.entry(kid)
        revoked = replace(entry, revoked=now)
        self._entries = [revoked if e.kid == kid else e for e in self._entries]
        return revoked


def write_private(path: Path, data: bytes) -> None:
    """Write a file atomically with mode 0600 (private keys, secrets)."""
    write_atomic(path, data, mode=0o600)


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write a file atomically: a reader sees the old file or the whole new one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("keyring times carry a time zone")
    return moment


def _opt_time(value: Any) -> datetime | None:
    return _time(value) if value else None
