"""workflow_processes.lock_key: processes that share one never run activities at the same time.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workflow_processes", sa.Column("lock_key", sa.Text, nullable=True))
    op.create_index("ix_workflow_processes_lock_key", "workflow_processes", ["lock_key"])


def downgrade() -> None:
    op.drop_index("ix_workflow_processes_lock_key", table_name="workflow_processes")
    op.drop_column("workflow_processes", "lock_key")
