"""sftp_settings: sealed credentials replace credential_ref

``credential_ref`` named an environment variable or file of the worker's machine, chosen by
the brand: a brand could have any server secret sent to a host of its choosing. The brand now
writes its password or private key through the API and it is stored sealed with the
operator's key (decision 0018). Existing rows have no credential any more, so they are
disabled: the worker does not poll them until the brand sets one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sftp_settings", schema=None) as batch_op:
        batch_op.drop_column("credential_ref")
        batch_op.add_column(
            sa.Column("credential_kind", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "credential_fingerprint", sa.String(length=128), nullable=False, server_default=""
            )
        )
        batch_op.add_column(sa.Column("credential_sealed", sa.LargeBinary(), nullable=True))
    op.execute(sa.text("UPDATE sftp_settings SET enabled = false"))


def downgrade() -> None:
    # The sealed credentials cannot become references again: the rows stay disabled.
    with op.batch_alter_table("sftp_settings", schema=None) as batch_op:
        batch_op.drop_column("credential_sealed")
        batch_op.drop_column("credential_fingerprint")
        batch_op.drop_column("credential_kind")
        batch_op.add_column(
            sa.Column("credential_ref", sa.String(length=1024), nullable=False, server_default="")
        )
    op.execute(sa.text("UPDATE sftp_settings SET enabled = false"))
