"""Retention: aggregate counts of purged signals, kept for statistics; deliveries by bucket.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.triggers import ensure_append_only

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create retention_statistics and index deliveries by bucket."""
    op.create_table(
        "retention_statistics",
        sa.Column("gemeente", sa.String(4), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("notices", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "gemeente", "category", "month", "status", "outcome", name="pk_retention_statistics"
        ),
    )
    op.create_index("ix_deliveries_bucket", "deliveries", ["bucket"])
    ensure_append_only(op.get_bind())


def downgrade() -> None:
    """Downgrades are not supported: restore a backup instead."""
    raise NotImplementedError("downgrade")
