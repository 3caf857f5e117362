"""Policy: partnerships, consent records and objections.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.triggers import ensure_append_only

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create partnerships, consents and objections."""
    op.create_table(
        "partnerships",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("creditor_oin", sa.String(20), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("starts", sa.Date(), nullable=False),
        sa.Column("ends", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(20), nullable=False),
        sa.ForeignKeyConstraint(
            ["creditor_oin"], ["partners.oin"], name="fk_partnerships_creditor_oin_partners"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_partnerships"),
    )
    op.create_index(
        "ix_partnerships_gemeente_creditor_oin", "partnerships", ["gemeente", "creditor_oin"]
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("creditor_oin", sa.String(20), nullable=False),
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.Column("person", sa.String(64), nullable=True),
        sa.Column("given", sa.Date(), nullable=False),
        sa.Column("expires", sa.Date(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["creditor_oin"], ["partners.oin"], name="fk_consents_creditor_oin_partners"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
        sa.UniqueConstraint("creditor_oin", "ref", name="uq_consents_creditor_oin_ref"),
    )
    op.create_table(
        "objections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("person", sa.String(64), nullable=True),
        sa.Column("kid", sa.String(64), nullable=True),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.Column("creditors", sa.Text(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("starts", sa.Date(), nullable=False),
        sa.Column("ends", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_objections"),
        sa.UniqueConstraint("gemeente", "ref", name="uq_objections_gemeente_ref"),
    )
    ensure_append_only(op.get_bind())


def downgrade() -> None:
    """Downgrades are not supported: restore a backup instead."""
    raise NotImplementedError("downgrade")
