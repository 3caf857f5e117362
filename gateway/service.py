"""The composition root of the gateway: one place that wires the concrete parts."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from gateway.checks import CheckContext, Checked, Checker, Refused
from gateway.clock import Clock, SystemClock
from gateway.partners import Directory
from gateway.settings import Settings
from gateway.store.atrest import BucketCipher
from gateway.store.auditlog import AuditLog
from gateway.store.engine import make_engine, migrate
from keys.atrest import FileMasterKeys
from keys.home import PartyHome
from keys.keyring import Keyring


@dataclass
class Gateway:
    """Everything a request needs, built once."""

    settings: Settings
    engine: Engine
    keyring: Keyring
    cipher: BucketCipher
    audit: AuditLog
    clock: Clock
    directory: Directory = field(default_factory=Directory)

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock | None = None) -> Gateway:
        """Connect to the store (migrating it) and load the gateway's keys."""
        engine = make_engine(settings.store_url)
        migrate(engine)
        return cls(
            settings=settings,
            engine=engine,
            keyring=PartyHome(settings.home).keyring(),
            cipher=BucketCipher(FileMasterKeys(settings.master_keys_dir)),
            audit=AuditLog(),
            clock=clock or SystemClock(),
        )

    def check(self, envelopes: Sequence[str | bytes], ctx: CheckContext) -> list[Checked | Refused]:
        """The checks that need no store, for a whole batch, in order."""
        return Checker(self.keyring.accepted("enc", now=ctx.now)).check_all(envelopes, ctx)

    def close(self) -> None:
        self.engine.dispose()


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (Python's default is
700): a batch of 500 notices makes tens of thousands of short-lived containers, nearly
all freed by reference counting, and at the default the collector ran 82 times in one
batch, every six notices."""


def settle() -> None:
    """Tune the garbage collector for a long-running process that has finished starting.

    A long-running process (a web worker, a batch helper) builds its modules, keys and
    caches once and keeps them; left in the collector's oldest generation they are
    scanned again at every full collection, which the intake's many short-lived objects
    trigger every few batches (about 3% of an intake's instructions): they are frozen.
    The youngest generation is collected less often (about 3% of an intake's time
    again, on batches of 500).
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)
