"""An index of the Failed and Cancelled processes by when they ended (their updated_at), so that
the report counts the processes that ended in its window without reading all history.

Revision ID: 0009
Revises: 0008

Built CONCURRENTLY: live writes go on while it is built (about a second per million processes).
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_workflow_processes_ended_at ON workflow_processes (updated_at) "
            "WHERE workflow_process_status_id IN (6, 8)"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_workflow_processes_ended_at")
