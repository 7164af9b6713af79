"""medical: drafts, signed reports and addenda (the last two append-only)

Revision ID: 0006_medical
Revises: 0007_user_lockout
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_medical"
down_revision: str | None = "0007_user_lockout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# finmed_refuse_change() was created by 0001 (PostgreSQL only); signed reports and addenda use it too.
APPEND_ONLY = ("medical_signed_reports", "medical_addenda")


def upgrade() -> None:
    op.create_table(
        "medical_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(length=128), nullable=False),
        sa.Column("hospital", sa.String(length=64), nullable=False),
        sa.Column("study", sa.JSON(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("draft_text", sa.Text(), nullable=False),
        sa.Column("draft_labels", sa.JSON(), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("precision", sa.String(length=20), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("context_ids", sa.JSON(), nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=True),
        sa.Column("review_item_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("state IN ('drafted', 'signed', 'rejected')", name=op.f("ck_medical_drafts_state")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_medical_drafts_created_by_users")),
        sa.ForeignKeyConstraint(
            ["output_id"], ["model_outputs.id"], name=op.f("fk_medical_drafts_output_id_model_outputs")
        ),
        sa.ForeignKeyConstraint(
            ["review_item_id"], ["review_items.id"], name=op.f("fk_medical_drafts_review_item_id_review_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medical_drafts")),
    )
    with op.batch_alter_table("medical_drafts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_medical_drafts_hospital"), ["hospital", "state", "created_at"], unique=False
        )
    op.create_table(
        "medical_signed_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(length=128), nullable=False),
        sa.Column("hospital", sa.String(length=64), nullable=False),
        sa.Column("signed_text", sa.Text(), nullable=False),
        sa.Column("signed_labels", sa.JSON(), nullable=False),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("rouge_l", sa.Double(), nullable=False),
        sa.Column("finding_agreement", sa.Double(), nullable=True),
        sa.Column("signed_by", sa.Integer(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["medical_drafts.id"], name=op.f("fk_medical_signed_reports_draft_id_medical_drafts")
        ),
        sa.ForeignKeyConstraint(["signed_by"], ["users.id"], name=op.f("fk_medical_signed_reports_signed_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medical_signed_reports")),
        sa.UniqueConstraint("draft_id", name=op.f("uq_medical_signed_reports_draft_id")),
    )
    with op.batch_alter_table("medical_signed_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_medical_signed_reports_hospital"), ["hospital"], unique=False)
        batch_op.create_index(batch_op.f("ix_medical_signed_reports_signed_by"), ["signed_by"], unique=False)
    op.create_table(
        "medical_addenda",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signed_report_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_medical_addenda_author_id_users")),
        sa.ForeignKeyConstraint(
            ["signed_report_id"],
            ["medical_signed_reports.id"],
            name=op.f("fk_medical_addenda_signed_report_id_medical_signed_reports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medical_addenda")),
    )
    with op.batch_alter_table("medical_addenda", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_medical_addenda_signed_report_id"), ["signed_report_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION finmed_refuse_change()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    with op.batch_alter_table("medical_addenda", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_medical_addenda_signed_report_id"))
    op.drop_table("medical_addenda")
    with op.batch_alter_table("medical_signed_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_medical_signed_reports_signed_by"))
        batch_op.drop_index(batch_op.f("ix_medical_signed_reports_hospital"))
    op.drop_table("medical_signed_reports")
    with op.batch_alter_table("medical_drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_medical_drafts_hospital"))
    op.drop_table("medical_drafts")
