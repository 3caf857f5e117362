"""The store's tables, as SQLAlchemy Core ``Table`` objects on one ``MetaData``.

The migrations in ``migrations/versions`` create these tables; a test compares the
migrated database with this module, so the two cannot drift apart.

Every timestamp is a :class:`UTCDateTime`: stored in UTC, always read back as an aware
datetime (SQLite has no time zones). Columns named ``sealed`` and ``contact`` hold
at-rest ciphertext (``gateway.store.atrest``); ``audit_events.data`` holds the canonical
bytes that the audit hashes cover.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
its tokens use. Rows of other versions are a load in progress or the previous register."""

register_persons = Table(
    "register_persons",
    metadata,
    Column("gemeente", String(4), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("pseudonym", String(64), primary_key=True),
    Column("household", String(64), nullable=False),
    Column("district", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_date", Date, nullable=True),
    Column("labels", Text, nullable=False),
    Column("types", Integer, nullable=False),
)
"""``types`` is a bit mask over ``keys.tokens.TOKEN_TYPES``: the token types the person has."""

register_tokens = Table(
    "register_tokens",
    metadata,
    Column("gemeente", String(4), nullable=False),
    Column("version", Integer, nullable=False),
    Column("token", String(32), nullable=False),
    Column("type", String(16), nullable=False),
    Column("pseudonym", String(64), nullable=False),
    Index(None, "gemeente", "version", "token"),
)

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
