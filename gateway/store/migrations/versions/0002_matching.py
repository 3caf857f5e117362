"""Matching: registers per gemeente, person status dates and token types, match outcomes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The register tables are dropped and created again, scoped by gemeente and version: a
register is derived data that its municipality delivers again (``register load``), so
nothing is lost that the municipality does not hold. Notices gain their match outcome and the
person pseudonym they were matched to.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.triggers import ensure_append_only

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Recreate the register tables per gemeente; add the outcome columns to notices."""
    op.drop_index("ix_register_tokens_token", table_name="register_tokens")
    op.drop_table("register_tokens")
    op.drop_table("register_persons")
    op.create_table(
        "registers",
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.String(20), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("gemeente", name="pk_registers"),
    )
    op.create_table(
        "register_persons",
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("household", sa.String(64), nullable=False),
        sa.Column("district", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_date", sa.Date(), nullable=True),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("types", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("gemeente", "version", "pseudonym", name="pk_register_persons"),
    )
    op.create_table(
        "register_tokens",
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_register_tokens_gemeente_version_token",
        "register_tokens",
        ["gemeente", "version", "token"],
    )
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=True))
        batch.add_column(sa.Column("person", sa.String(64), nullable=True))
        batch.create_index("ix_notices_person", ["person"])
    ensure_append_only(op.get_bind())


def downgrade() -> None:
    """Downgrades are not supported: restore a backup instead."""
    raise NotImplementedError("restore a backup instead")
