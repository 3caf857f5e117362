"""Registers: a count of each surname encoding per version, and given-name encodings.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

A version of a register now has a third table, ``register_<gemeente>_<version>_surnames``
(``gateway.store.schema.register_tables``), and its persons carry encodings of their
given names. Registers loaded before have neither. As in revisions 0002 and 0007 they
are dropped rather than converted: a register is derived data that its municipality
loads again (``register load``); until it does, notices for its gemeente go to review.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VERSION_TABLE = re.compile(r"register_[0-9]{4}_[0-9]+_(persons|tokens)")


def upgrade() -> None:
    """Drop every version's tables and forget the registers in use."""
    bind = op.get_bind()
    for name in sa.inspect(bind).get_table_names():
        if _VERSION_TABLE.fullmatch(name):
            op.drop_table(name)
    op.execute("DELETE FROM registers")


def downgrade() -> None:
    """Downgrades are not supported: restore a backup instead."""
    raise NotImplementedError("restore a backup instead")
