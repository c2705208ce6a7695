"""cycle_hold: cycles the clock could not open or close, retried with a backoff

One brand's failing target used to end the whole clock tick, so no other cycle of any brand
closed. A failure is now kept here, per (brand, target, cycle), with a reason the brand may
read (ListCycles), and deleted once the work succeeds (decision 0019).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import attain_server.store.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cycle_hold",
        sa.Column("brand_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("target_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("cycle", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("target_version", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "first_failure_time",
            attain_server.store.types.UtcDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "last_failure_time",
            attain_server.store.types.UtcDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "next_attempt_time",
            attain_server.store.types.UtcDateTime(timezone=True),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["brand_code"], ["brand.code"]),
        sa.PrimaryKeyConstraint("brand_code", "target_code", "cycle"),
    )


def downgrade() -> None:
    op.drop_table("cycle_hold")
