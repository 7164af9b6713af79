"""models: an adapter version names the base version it is served on

Revision ID: 0007_model_adapters
Revises: 0006_finance_calibration
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_model_adapters"
down_revision: str | None = "0006_finance_calibration"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_model_versions_parent_id_model_versions"), "model_versions", ["parent_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_constraint(op.f("fk_model_versions_parent_id_model_versions"), type_="foreignkey")
        batch.drop_column("parent_id")
