"""finance: what produced each assessment (numeric, LLM and calibration versions), the exact prompt, odd fields

Revision ID: 0006_finance_calibration
Revises: 0006_dashboards
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_finance_calibration"
down_revision: str | None = "0006_dashboards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("finance_assessments") as batch:
        batch.add_column(sa.Column("prompt", sa.Text(), nullable=True))
        batch.add_column(sa.Column("numeric_version", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("llm_version", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("calibration_version", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("odd_fields", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("finance_assessments") as batch:
        for name in ("odd_fields", "calibration_version", "llm_version", "numeric_version", "prompt"):
            batch.drop_column(name)
