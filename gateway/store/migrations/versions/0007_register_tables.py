"""Registers: a pair of tables per version, integer tokens, room for fuzzy encodings.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

``register_persons`` and ``register_tokens`` held every version of every gemeente's
register in two shared tables, whose indexes a load had to keep in order through
millions of random inserts. Each version now gets tables of its own, created by the
load (``gateway.store.schema.register_tables``). As in revision 0002, the registers are
dropped rather than converted: a register is derived data that its municipality loads
again (``register load``); until it does, notices for its gemeente go to review.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop the shared register tables and forget the registers in use."""
    op.drop_index("ix_register_tokens_gemeente_version_token", table_name="register_tokens")
    op.drop_table("register_tokens")
    op.drop_table("register_persons")
    op.execute("DELETE FROM registers")


def downgrade() -> None:
    """Downgrades are not supported: restore a backup instead."""
    raise NotImplementedError("restore a backup instead")
