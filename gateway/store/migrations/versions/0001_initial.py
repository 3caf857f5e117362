"""Initial schema: partners and keys, notices and deliveries, register, audit log.

Revision ID: 0001
Revises:
Create Date: 2025-11-22

The tables are spelt out here rather than taken from ``schema.metadata``, so this
revision stays what it was when later revisions change the schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.triggers import ensure_append_only

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table, the audit head row and the append-only triggers."""
    op.create_table(
        "partners",
        sa.Column("oin", sa.String(20), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("gemeente", sa.String(4), nullable=True),
        sa.Column("parent_oin", sa.String(20), nullable=True),
        _time("created_at"),
        _time("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("oin", name="pk_partners"),
        sa.CheckConstraint(
            "role IN ('creditor', 'team', 'backoffice', 'municipality')",
            name="ck_partners_role",
        ),
    )
    op.create_table(
        "partner_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("partner_oin", sa.String(20), nullable=False),
        sa.Column("use", sa.String(3), nullable=False),
        sa.Column("jwk", sa.Text(), nullable=False),
        _time("registered_at"),
        _time("not_after", nullable=True),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_partner_keys"),
        sa.ForeignKeyConstraint(
            ["partner_oin"], ["partners.oin"], name="fk_partner_keys_partner_oin_partners"
        ),
        sa.CheckConstraint("use IN ('sig', 'enc')", name="ck_partner_keys_use"),
    )
    op.create_index("ix_partner_keys_partner_oin", "partner_keys", ["partner_oin"])
    op.create_table(
        "partner_certificates",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("partner_oin", sa.String(20), nullable=False),
        _time("not_after"),
        _time("registered_at"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_partner_certificates"),
        sa.ForeignKeyConstraint(
            ["partner_oin"],
            ["partners.oin"],
            name="fk_partner_certificates_partner_oin_partners",
        ),
    )
    op.create_index("ix_partner_certificates_partner_oin", "partner_certificates", ["partner_oin"])
    op.create_table(
        "outreach_keysets",
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("gemeente", name="pk_outreach_keysets"),
    )
    op.create_table(
        "data_keys",
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        _time("created_at"),
        _time("destroyed_at", nullable=True),
        sa.PrimaryKeyConstraint("bucket", name="pk_data_keys"),
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("jti", sa.String(36), nullable=False),
        sa.Column("creditor_oin", sa.String(20), nullable=False),
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("envelope_sha256", sa.String(64), nullable=False),
        _time("received_at"),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("receipt_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
        sa.UniqueConstraint("jti", name="uq_notices_jti"),
        sa.ForeignKeyConstraint(
            ["creditor_oin"], ["partners.oin"], name="fk_notices_creditor_oin_partners"
        ),
        sa.ForeignKeyConstraint(
            ["bucket"], ["data_keys.bucket"], name="fk_notices_bucket_data_keys"
        ),
    )
    op.create_index("ix_notices_creditor_oin", "notices", ["creditor_oin"])
    op.create_index("ix_notices_bucket", "notices", ["bucket"])
    op.create_index("ix_notices_status_id", "notices", ["status", "id"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("recipient_oin", sa.String(20), nullable=False),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("contact", sa.LargeBinary(), nullable=False),
        _time("created_at"),
        _time("acked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notices.id"], name="fk_deliveries_notice_id_notices"
        ),
    )
    op.create_index(
        "ix_deliveries_recipient_oin_acked_at_id",
        "deliveries",
        ["recipient_oin", "acked_at", "id"],
    )
    op.create_index("ix_deliveries_notice_id", "deliveries", ["notice_id"])
    op.create_table(
        "receipts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("creditor_oin", sa.String(20), nullable=False),
        _time("created_at"),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
    )
    op.create_index(
        "ix_receipts_creditor_oin_created_at", "receipts", ["creditor_oin", "created_at"]
    )
    op.create_table(
        "register_persons",
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("household", sa.String(64), nullable=False),
        sa.Column("district", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", name="pk_register_persons"),
    )
    op.create_table(
        "register_tokens",
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
    )
    op.create_index("ix_register_tokens_token", "register_tokens", ["token"])
    op.create_table(
        "audit_events",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("position", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])
    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("size", name="pk_audit_checkpoints"),
    )
    op.bulk_insert(audit_head, [{"id": 1, "position": 0, "chain_hash": bytes(32)}])
    ensure_append_only(op.get_bind())


def downgrade() -> None:
    """Downgrades are not supported: restore a backup instead."""
    raise NotImplementedError("downgrade")
