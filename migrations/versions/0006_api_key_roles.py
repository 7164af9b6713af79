"""api keys act as a role (existing keys become engineer keys, the access they had)

Revision ID: 0006_api_key_roles
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_api_key_roles"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = ("analyst", "radiologist", "compliance", "engineer", "admin")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("role", sa.String(length=20), server_default="engineer", nullable=False))
        batch.create_check_constraint(op.f("ck_api_keys_role"), f"role IN ({', '.join(repr(r) for r in ROLES)})")


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("ck_api_keys_role"), type_="check")
        batch.drop_column("role")
