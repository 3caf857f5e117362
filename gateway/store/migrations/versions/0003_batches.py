"""Batch files: each SFTP delivery and what became of each of its lines.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.triggers import ensure_append_only

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create batch_files and batch_lines."""
    op.create_table(
        "batch_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("creditor_oin", sa.String(20), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=True),
        sa.Column("receipt_id", sa.String(36), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('processing', 'done', 'quarantined')", name="ck_batch_files_status"
        ),
        sa.ForeignKeyConstraint(
            ["creditor_oin"], ["partners.oin"], name="fk_batch_files_creditor_oin_partners"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_batch_files"),
    )
    op.create_index(
        "ix_batch_files_creditor_oin_name_sha256",
        "batch_files",
        ["creditor_oin", "name", "sha256"],
    )
    op.create_table(
        "batch_lines",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("envelope_sha256", sa.String(64), nullable=False),
        sa.Column("jti", sa.String(36), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"], ["batch_files.id"], name="fk_batch_lines_file_id_batch_files"
        ),
        sa.PrimaryKeyConstraint("file_id", "line", name="pk_batch_lines"),
    )
    ensure_append_only(op.get_bind())


def downgrade() -> None:
    """Downgrades are not supported: restore a backup instead."""
    raise NotImplementedError("downgrade")
