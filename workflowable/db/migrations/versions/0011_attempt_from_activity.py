"""Each attempt row names the activity the process came from (`from_workflow_activity_id`: its
position when the attempt was written, NULL at the start), so that the report counts the
transitions taken from the window's rows alone instead of joining each to the process's
previous step, which may lie in any month the attempt log keeps.

Revision ID: 0011
Revises: 0010

A nullable column without a default: Postgres adds it to the log and every partition without
rewriting a row, so the upgrade takes a moment whatever the log's size. Rows written before it
keep NULL; the report finds their previous step as before (reporting_sql._STEPS). No foreign
key: checking one would read the whole log.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE workflow_process_activity_logs ADD COLUMN from_workflow_activity_id bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE workflow_process_activity_logs DROP COLUMN from_workflow_activity_id")
