"""The store's tables, as SQLAlchemy Core ``Table`` objects on one ``MetaData``.

The migrations in ``migrations/versions`` create these tables; a test compares the
migrated database with this module, so the two cannot drift apart.

Every timestamp is a :class:`UTCDateTime`: stored in UTC, always read back as an aware
datetime (SQLite has no time zones). Columns named ``sealed`` and ``contact`` hold
at-rest ciphertext (``gateway.store.atrest``); ``audit_events.data`` holds the canonical
bytes that the audit hashes cover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Named constraints, so Alembic batch migrations on SQLite can find and alter them."""

ROLES = ("creditor", "team", "backoffice", "municipality")
"""The partner roles."""

KEY_USES = ("sig", "enc")
"""The uses of a partner's public key."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored in UTC; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; SQLite gets a naive UTC value, since it keeps no offset."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: the store keeps timezone-aware UTC only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value)}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""All tables of the store."""

partners = Table(
    "partners",
    metadata,
    Column("oin", String(20), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("gemeente", String(4), nullable=True),
    Column("parent_oin", String(20), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    CheckConstraint("role IN ('creditor', 'team', 'backoffice', 'municipality')", name="role"),
)

partner_keys = Table(
    "partner_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("partner_oin", String(20), ForeignKey("partners.oin"), nullable=False),
    Column("use", String(3), nullable=False),
    Column("jwk", Text, nullable=False),
    Column("registered_at", UTCDateTime(), nullable=False),
    Column("not_after", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    CheckConstraint("use IN ('sig', 'enc')", name="use"),
    Index(None, "partner_oin"),
)

partner_certificates = Table(
    "partner_certificates",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("partner_oin", String(20), ForeignKey("partners.oin"), nullable=False),
    Column("not_after", UTCDateTime(), nullable=False),
    Column("registered_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index(None, "partner_oin"),
)

partner_ssh_keys = Table(
    "partner_ssh_keys",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("partner_oin", String(20), ForeignKey("partners.oin"), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("registered_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index(None, "partner_oin"),
)
"""A creditor's SSH public keys for the SFTP intake: ``fingerprint`` as OpenSSH prints
it (``SHA256:…``), ``public_key`` in the one-line OpenSSH form without a comment."""

outreach_keysets = Table(
    "outreach_keysets",
    metadata,
    Column("gemeente", String(4), primary_key=True),
    Column("signed", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

data_keys = Table(
    "data_keys",
    metadata,
    Column("bucket", String(64), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("destroyed_at", UTCDateTime(), nullable=True),
)

notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("jti", String(36), nullable=False, unique=True),
    Column("creditor_oin", String(20), ForeignKey("partners.oin"), nullable=False),
    Column("gemeente", String(4), nullable=False),
    Column("category", String(32), nullable=False),
    Column("stage", String(20), nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("envelope_sha256", String(64), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("bucket", String(64), ForeignKey("data_keys.bucket"), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("status", String(20), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("receipt_id", String(36), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("person", String(64), nullable=True),
    Index(None, "creditor_oin"),
    Index(None, "bucket"),
    Index(None, "status", "id"),
    Index(None, "person"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice_id", Integer, ForeignKey("notices.id"), nullable=False),
    Column("recipient_oin", String(20), nullable=False),
    Column("bucket", String(64), nullable=False),
    Column("contact", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("acked_at", UTCDateTime(), nullable=True),
    Index(None, "recipient_oin", "acked_at", "id"),
    Index(None, "notice_id"),
    Index(None, "bucket"),
)

retention_statistics = Table(
    "retention_statistics",
    metadata,
    Column("gemeente", String(4), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("outcome", String(16), primary_key=True),
    Column("notices", Integer, nullable=False),
    Column("deliveries", Integer, nullable=False),
)
"""What retention and erasure leave of the signals they delete: counts per gemeente,
category, month received (``2026-11``), status and outcome (``-`` for none). No
pseudonym, no jti, nothing about a person (``gateway.retention``)."""

receipts = Table(
    "receipts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("creditor_oin", String(20), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("jws", Text, nullable=False),
    Index(None, "creditor_oin", "created_at"),
)

registers = Table(
    "registers",
    metadata,
    Column("gemeente", String(4), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("kid", String(64), nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("loaded_at", UTCDateTime(), nullable=False),
    Column("loaded_by", String(20), nullable=False),
    Column("persons", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
)
"""One row per gemeente: the version of its register in use, and the linkage-secret kid
its tokens use. The tables of other versions (``register_tables``) are a load in progress
or the previous register."""

REGISTER_TABLE = re.compile(r"register_([0-9]{4})_([0-9]+)_(persons|tokens|surnames)")
"""The name of a table of one version of a gemeente's register (``register_tables``)."""


@dataclass(frozen=True)
class RegisterTables:
    """The tables of one version of a gemeente's register, and their indexes.

    A load creates the tables bare, fills them, then builds the indexes (one sort each,
    far cheaper than keeping a B-tree in order through millions of random inserts), and
    the next load but one drops them whole. They live on a ``MetaData`` of their own:
    they come and go with the registers, not with the migrations.
    """

    persons: Table
    """One row per person: ``id`` is the person's number in its register file (from 1),
    ``types`` a bit mask over ``keys.tokens.TOKEN_TYPES`` of the token types the person
    has, ``fuzzy`` the person's fuzzy encodings (``keys.bloom.pack``) or NULL."""
    tokens: Table
    """One row per token: its first 8 bytes as a signed integer
    (``gateway.register.token_keys``), the type's place in ``keys.tokens.TOKEN_TYPES``
    and the person's ``id``."""
    surnames: Table
    """One row per surname of which some person carries a fuzzy encoding: the
    encoding's key (``gateway.register.surname_key``) and how many persons carry it."""

    @property
    def tables(self) -> tuple[Table, ...]:
        """All three, in the order a load creates them."""
        return (self.persons, self.tokens, self.surnames)

    @property
    def indexes(self) -> tuple[Index, ...]:
        """The indexes a load builds once its rows are in."""
        return (*self.persons.indexes, *self.tokens.indexes)


@lru_cache(maxsize=64)
def register_tables(gemeente: str, version: int) -> RegisterTables:
    """The tables of ``version`` of the register of ``gemeente`` (four digits)."""
    if not re.fullmatch(r"[0-9]{4}", gemeente) or version < 1:
        raise ValueError("a register's tables need a four-digit gemeente and a version")
    meta = MetaData(naming_convention=NAMING_CONVENTION)
    prefix = f"register_{gemeente}_{version}"
    persons = Table(
        f"{prefix}_persons",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("pseudonym", String(64), nullable=False),
        Column("household", String(64), nullable=False),
        Column("district", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        Column("status_date", Date, nullable=True),
        Column("labels", Text, nullable=False),
        Column("types", Integer, nullable=False),
        Column("fuzzy", LargeBinary, nullable=True),
        Index(None, "pseudonym", unique=True),
    )
    tokens = Table(
        f"{prefix}_tokens",
        meta,
        Column("token", BigInteger, nullable=False),
        Column("type", SmallInteger, nullable=False),
        Column("person", Integer, nullable=False),
        Index(None, "token", "type", "person"),
    )
    surnames = Table(
        f"{prefix}_surnames",
        meta,
        Column("surname", BigInteger, primary_key=True, autoincrement=False),
        Column("persons", Integer, nullable=False),
    )
    return RegisterTables(persons=persons, tokens=tokens, surnames=surnames)


batch_files = Table(
    "batch_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creditor_oin", String(20), ForeignKey("partners.oin"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("lines", Integer, nullable=True),
    Column("receipt_id", String(36), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    CheckConstraint("status IN ('processing', 'done', 'quarantined')", name="status"),
    Index(None, "creditor_oin", "name", "sha256"),
)
"""A batch file delivered over SFTP, from the moment it is complete to its receipt."""

batch_lines = Table(
    "batch_lines",
    metadata,
    Column("file_id", Integer, ForeignKey("batch_files.id"), primary_key=True),
    Column("line", Integer, primary_key=True, autoincrement=False),
    Column("envelope_sha256", String(64), nullable=False),
    Column("jti", String(36), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
)
"""What became of each line of a batch file, committed with the line's notice, so a
restart resumes after the last line judged."""

audit_events = Table(
    "audit_events",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "created_at"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),
    Column("chain_hash", LargeBinary, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("signature", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

partnerships = Table(
    "partnerships",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gemeente", String(4), nullable=False),
    Column("creditor_oin", String(20), ForeignKey("partners.oin"), nullable=False),
    Column("categories", Text, nullable=False),
    Column("starts", Date, nullable=False),
    Column("ends", Date, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(20), nullable=False),
    Index(None, "gemeente", "creditor_oin"),
)
"""A municipality's agreement to receive a creditor's signals (``gateway.partnerships``):
``categories`` comma-separated, valid from ``starts`` until (not on) ``ends``."""

consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", String(64), nullable=False),
    Column("creditor_oin", String(20), ForeignKey("partners.oin"), nullable=False),
    Column("gemeente", String(4), nullable=False),
    Column("categories", Text, nullable=False),
    Column("kid", String(64), nullable=False),
    Column("tokens", Text, nullable=False),
    Column("person", String(64), nullable=True),
    Column("given", Date, nullable=False),
    Column("expires", Date, nullable=False),
    Column("withdrawn_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("creditor_oin", "ref"),
)
"""A person's consent to a creditor's signals, by match tokens (JSON, the types that
single a person out) and, where the register knew them, the person's pseudonym."""

objections = Table(
    "objections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gemeente", String(4), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("person", String(64), nullable=True),
    Column("kid", String(64), nullable=True),
    Column("tokens", Text, nullable=False),
    Column("creditors", Text, nullable=False),
    Column("categories", Text, nullable=False),
    Column("starts", Date, nullable=False),
    Column("ends", Date, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(20), nullable=False),
    UniqueConstraint("gemeente", "ref"),
)
"""A person's objection, registered by the municipality: the person's pseudonym and
match tokens, never an identity; empty ``creditors``/``categories`` cover all."""

APPEND_ONLY_TABLES = ("audit_events", "audit_checkpoints")
"""Tables that no SQL may UPDATE, DELETE or TRUNCATE (see ``gateway.store.triggers``)."""
