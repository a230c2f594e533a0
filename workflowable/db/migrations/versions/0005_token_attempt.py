"""workflow_process_tokens.workflow_process_activity_log_id: the attempt whose Success wrote
an output token, so that a step repeated after a crash finds what it already wrote.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workflow_process_tokens",
        sa.Column(
            "workflow_process_activity_log_id",
            sa.BigInteger,
            sa.ForeignKey("workflow_process_activity_logs.id", ondelete="CASCADE"),
            nullable=True,
        ),
    )
    op.create_index(
        "ix_workflow_process_tokens_attempt",
        "workflow_process_tokens",
        ["workflow_process_activity_log_id"],
        postgresql_where=sa.text("workflow_process_activity_log_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_process_tokens_attempt", table_name="workflow_process_tokens")
    op.drop_column("workflow_process_tokens", "workflow_process_activity_log_id")
