"""finance: risk assessments

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "finance_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("numeric_score", sa.Double(), nullable=False),
        sa.Column("numeric_level", sa.Integer(), nullable=False),
        sa.Column("llm_level", sa.Integer(), nullable=True),
        sa.Column("parse_ok", sa.Boolean(), nullable=True),
        sa.Column("llm_answer", sa.Text(), nullable=True),
        sa.Column("fused_score", sa.Double(), nullable=False),
        sa.Column("risk_level", sa.Integer(), nullable=False),
        sa.Column("disagreement", sa.Integer(), nullable=True),
        sa.Column("adjudicated", sa.Boolean(), nullable=False),
        sa.Column("audit_sample", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("risk_level BETWEEN 0 AND 5", name=op.f("ck_finance_assessments_risk_level")),
        sa.CheckConstraint("numeric_level BETWEEN 0 AND 5", name=op.f("ck_finance_assessments_numeric_level")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finance_assessments")),
    )
    with op.batch_alter_table("finance_assessments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finance_assessments_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_finance_assessments_account_id"), ["account_id", "transaction_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("finance_assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_assessments_account_id"))
        batch_op.drop_index(batch_op.f("ix_finance_assessments_batch_id"))
    op.drop_table("finance_assessments")
