"""drop txn.fingerprint: a redelivery is compared by its content

The fingerprint (SHA-256 of a transaction's canonical content) was the quick test for a
redelivered id, with the stored content deciding on a mismatch. A redelivery is rare and its
stored row is read anyway, so the content now always decides, and no transaction pays for
the hash (about a tenth of an ingest batch's time, decision 0012).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("txn", schema=None) as batch_op:
        batch_op.drop_column("fingerprint")


def downgrade() -> None:
    # Rows recorded without a fingerprint get an empty one; the content still decides.
    with op.batch_alter_table("txn", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fingerprint", sa.String(length=64), nullable=False, server_default="")
        )
