"""SSH keys of creditors, for logging in to the embedded SFTP intake.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.store.triggers import ensure_append_only

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create partner_ssh_keys."""
    op.create_table(
        "partner_ssh_keys",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("partner_oin", sa.String(20), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_oin"], ["partners.oin"], name="fk_partner_ssh_keys_partner_oin_partners"
        ),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_partner_ssh_keys"),
    )
    op.create_index("ix_partner_ssh_keys_partner_oin", "partner_ssh_keys", ["partner_oin"])
    ensure_append_only(op.get_bind())


def downgrade() -> None:
    """Downgrades are not supported: restore a backup instead."""
    raise NotImplementedError("downgrade")
