"""Workflow swaps: moving the live processes of a workflow onto another of the same event.

The original's four tables, with two deviations: an audit row's from_workflow_activity_id is
nullable (a process that had not finished an activity moves too) and (swap, from process) is
unique, so a repeated move writes nothing.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
    ]


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.BigInteger, sa.ForeignKey(target, ondelete="CASCADE"), nullable=nullable)


#: The seeds this migration wrote, as it wrote them.
SWAP_STATUSES: list[dict[str, object]] = [{"id": 1, "name": "Draft"}, {"id": 2, "name": "Scheduled"}, {"id": 3, "name": "Dispatched"}, {"id": 4, "name": "Processing"}, {"id": 5, "name": "Completed"}]


def upgrade() -> None:
    op.create_table(
        "workflow_swap_statuses",
        *_timestamps(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
    )
    op.bulk_insert(
        sa.table("workflow_swap_statuses", sa.column("id", sa.BigInteger), sa.column("name", sa.String)),
        SWAP_STATUSES,
    )
    op.create_table(
        "workflow_swaps",
        *_timestamps(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        _fk("from_workflow_id", "workflows.id"),
        _fk("to_workflow_id", "workflows.id"),
        _fk("workflow_swap_status_id", "workflow_swap_statuses.id"),
        sa.Column("should_transfer_output_tokens", sa.Boolean, nullable=False, server_default=sa.true()),
        *(sa.Column(name, sa.DateTime(timezone=True), nullable=True) for name in ("scheduled_at", "dispatched_at", "started_at", "completed_at")),
    )
    for column in ("from_workflow_id", "to_workflow_id", "workflow_swap_status_id", "scheduled_at", "dispatched_at", "started_at", "completed_at"):
        op.create_index(f"ix_workflow_swaps_{column}", "workflow_swaps", [column])
    op.create_table(
        "workflow_swap_activity_maps",
        *_timestamps(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        _fk("workflow_swap_id", "workflow_swaps.id"),
        _fk("from_workflow_activity_id", "workflow_activities.id"),
        _fk("to_workflow_activity_id", "workflow_activities.id", nullable=True),
        sa.UniqueConstraint("workflow_swap_id", "from_workflow_activity_id", name="from_workflow_activity_must_be_unique"),
    )
    op.create_table(
        "workflow_swap_audit_logs",
        *_timestamps(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        _fk("workflow_swap_id", "workflow_swaps.id"),
        _fk("from_workflow_process_id", "workflow_processes.id"),
        _fk("from_workflow_activity_id", "workflow_activities.id", nullable=True),
        _fk("to_workflow_process_id", "workflow_processes.id"),
        _fk("to_workflow_activity_id", "workflow_activities.id", nullable=True),
        sa.UniqueConstraint("workflow_swap_id", "from_workflow_process_id", name="workflow_swap_audit_logs_process_key"),
    )
    op.create_index("ix_workflow_swap_audit_logs_from_workflow_process_id", "workflow_swap_audit_logs", ["from_workflow_process_id"])
    op.create_index("ix_workflow_swap_audit_logs_to_workflow_process_id", "workflow_swap_audit_logs", ["to_workflow_process_id"])


def downgrade() -> None:
    for name in ("workflow_swap_audit_logs", "workflow_swap_activity_maps", "workflow_swaps", "workflow_swap_statuses"):
        op.drop_table(name)
