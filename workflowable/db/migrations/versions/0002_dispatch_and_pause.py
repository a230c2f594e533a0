"""workflow_processes.dispatched_at (when its current Temporal run was started) and
paused_from_status_id (the status a resume returns to).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workflow_processes", sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "workflow_processes",
        sa.Column("paused_from_status_id", sa.BigInteger, sa.ForeignKey("workflow_process_statuses.id"), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("workflow_processes", "paused_from_status_id")
    op.drop_column("workflow_processes", "dispatched_at")
