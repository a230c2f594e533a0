"""Core schema: the original package's tables, column names and seeded status ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 20:48:08.196967
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


#: The seeds this migration wrote, as it wrote them (a migration never reads live code).
SEEDS: dict[str, list[dict[str, object]]] = {
    "workflow_statuses": [{"id": 1, "name": "Draft"}, {"id": 2, "name": "Active"}, {"id": 3, "name": "Deactivated"}, {"id": 4, "name": "Archived"}],
    "workflow_process_statuses": [{"id": 1, "name": "Created"}, {"id": 2, "name": "Pending"}, {"id": 3, "name": "Dispatched"}, {"id": 4, "name": "Running"}, {"id": 5, "name": "Paused"}, {"id": 6, "name": "Failed"}, {"id": 7, "name": "Completed"}, {"id": 8, "name": "Cancelled"}],
    "workflow_process_activity_log_statuses": [{"id": 1, "name": "In Progress"}, {"id": 2, "name": "Success"}, {"id": 3, "name": "Failure"}],
}


def upgrade() -> None:

    op.create_table('workflow_activity_types',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('class_name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('class_name')
    )
    op.create_table('workflow_condition_types',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('class_name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('class_name')
    )
    op.create_table('workflow_events',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('class_name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('class_name'),
    sa.UniqueConstraint('name')
    )
    op.create_table('workflow_priorities',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('priority')
    )
    op.create_table('workflow_process_activity_log_statuses',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('workflow_process_statuses',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('workflow_statuses',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('workflows',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('workflow_event_id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_status_id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_priority_id', sa.BigInteger(), nullable=False),
    sa.Column('retry_interval', sa.Integer(), server_default='300', nullable=False),
    sa.Column('description', sa.String(), nullable=True),
    sa.Column('max_attempts', sa.Integer(), server_default='3', nullable=False),
    sa.Column('retry_backoff', sa.Float(), server_default='1.0', nullable=False),
    sa.Column('activity_timeout', sa.Float(), server_default='300', nullable=False),
    sa.ForeignKeyConstraint(['workflow_event_id'], ['workflow_events.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_priority_id'], ['workflow_priorities.id'], ),
    sa.ForeignKeyConstraint(['workflow_status_id'], ['workflow_statuses.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_index(op.f('ix_workflows_workflow_event_id'), 'workflows', ['workflow_event_id'], unique=False)
    op.create_index(op.f('ix_workflows_workflow_priority_id'), 'workflows', ['workflow_priority_id'], unique=False)
    op.create_index(op.f('ix_workflows_workflow_status_id'), 'workflows', ['workflow_status_id'], unique=False)
    op.create_table('workflow_activities',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_activity_type_id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('max_attempts', sa.Integer(), nullable=True),
    sa.Column('timeout', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['workflow_activity_type_id'], ['workflow_activity_types.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_workflow_activities_workflow_activity_type_id'), 'workflow_activities', ['workflow_activity_type_id'], unique=False)
    op.create_index(op.f('ix_workflow_activities_workflow_id'), 'workflow_activities', ['workflow_id'], unique=False)
    op.create_table('workflow_activity_parameters',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_activity_id', sa.BigInteger(), nullable=True),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['workflow_activity_id'], ['workflow_activities.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workflow_activity_id', 'key')
    )
    op.create_table('workflow_processes',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_process_status_id', sa.BigInteger(), nullable=False),
    sa.Column('last_workflow_activity_id', sa.BigInteger(), nullable=True),
    sa.Column('first_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_run_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('queue', sa.String(length=255), nullable=False),
    sa.Column('temporal_run_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['last_workflow_activity_id'], ['workflow_activities.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], ),
    sa.ForeignKeyConstraint(['workflow_process_status_id'], ['workflow_process_statuses.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_workflow_processes_status_next_run_at', 'workflow_processes', ['workflow_process_status_id', 'next_run_at'], unique=False)
    op.create_index(op.f('ix_workflow_processes_workflow_id'), 'workflow_processes', ['workflow_id'], unique=False)
    op.create_table('workflow_transitions',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('workflow_id', sa.BigInteger(), nullable=False),
    sa.Column('from_workflow_activity_id', sa.BigInteger(), nullable=True),
    sa.Column('to_workflow_activity_id', sa.BigInteger(), nullable=False),
    sa.Column('ordinal', sa.SmallInteger(), nullable=False),
    sa.ForeignKeyConstraint(['from_workflow_activity_id'], ['workflow_activities.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['to_workflow_activity_id'], ['workflow_activities.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_workflow_transitions_from_workflow_activity_id'), 'workflow_transitions', ['from_workflow_activity_id'], unique=False)
    op.create_index(op.f('ix_workflow_transitions_to_workflow_activity_id'), 'workflow_transitions', ['to_workflow_activity_id'], unique=False)
    op.create_index(op.f('ix_workflow_transitions_workflow_id'), 'workflow_transitions', ['workflow_id'], unique=False)
    op.create_table('workflow_conditions',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_transition_id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_condition_type_id', sa.BigInteger(), nullable=False),
    sa.Column('ordinal', sa.SmallInteger(), nullable=False),
    sa.ForeignKeyConstraint(['workflow_condition_type_id'], ['workflow_condition_types.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_transition_id'], ['workflow_transitions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_workflow_conditions_workflow_condition_type_id'), 'workflow_conditions', ['workflow_condition_type_id'], unique=False)
    op.create_index(op.f('ix_workflow_conditions_workflow_transition_id'), 'workflow_conditions', ['workflow_transition_id'], unique=False)
    op.create_table('workflow_process_activity_logs',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_process_id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_activity_id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_process_activity_log_status_id', sa.BigInteger(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('temporal_run_id', sa.String(length=64), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['workflow_activity_id'], ['workflow_activities.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_process_activity_log_status_id'], ['workflow_process_activity_log_statuses.id'], name='workflow_process_activity_log_status', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_process_id'], ['workflow_processes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workflow_process_id', 'temporal_run_id', 'step', 'attempt', name='workflow_process_activity_logs_attempt_key')
    )
    op.create_index(op.f('ix_workflow_process_activity_logs_workflow_activity_id'), 'workflow_process_activity_logs', ['workflow_activity_id'], unique=False)
    op.create_index(op.f('ix_workflow_process_activity_logs_workflow_process_activity_log_status_id'), 'workflow_process_activity_logs', ['workflow_process_activity_log_status_id'], unique=False)
    op.create_index(op.f('ix_workflow_process_activity_logs_workflow_process_id'), 'workflow_process_activity_logs', ['workflow_process_id'], unique=False)
    op.create_table('workflow_process_tokens',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_process_id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_activity_id', sa.BigInteger(), nullable=True),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['workflow_activity_id'], ['workflow_activities.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_process_id'], ['workflow_processes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_workflow_process_tokens_key'), 'workflow_process_tokens', ['key'], unique=False)
    op.create_index('ix_workflow_process_tokens_value', 'workflow_process_tokens', ['value'], unique=False, postgresql_using='hash')
    op.create_index(op.f('ix_workflow_process_tokens_workflow_process_id'), 'workflow_process_tokens', ['workflow_process_id'], unique=False)
    op.create_table('workflow_condition_parameters',
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('workflow_condition_id', sa.BigInteger(), nullable=True),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['workflow_condition_id'], ['workflow_conditions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workflow_condition_id', 'key')
    )
    # The status tables' ids are part of the documented schema (1 Created ... 8 Cancelled).
    # Only the seeds of the tables made here; later migrations seed their own.
    for table_name in ("workflow_statuses", "workflow_process_statuses", "workflow_process_activity_log_statuses"):
        table = sa.table(table_name, sa.column("id", sa.BigInteger), sa.column("name", sa.String))
        op.bulk_insert(table, SEEDS[table_name])


def downgrade() -> None:

    op.drop_table('workflow_condition_parameters')
    op.drop_index(op.f('ix_workflow_process_tokens_workflow_process_id'), table_name='workflow_process_tokens')
    op.drop_index('ix_workflow_process_tokens_value', table_name='workflow_process_tokens', postgresql_using='hash')
    op.drop_index(op.f('ix_workflow_process_tokens_key'), table_name='workflow_process_tokens')
    op.drop_table('workflow_process_tokens')
    op.drop_index(op.f('ix_workflow_process_activity_logs_workflow_process_id'), table_name='workflow_process_activity_logs')
    op.drop_index(op.f('ix_workflow_process_activity_logs_workflow_process_activity_log_status_id'), table_name='workflow_process_activity_logs')
    op.drop_index(op.f('ix_workflow_process_activity_logs_workflow_activity_id'), table_name='workflow_process_activity_logs')
    op.drop_table('workflow_process_activity_logs')
    op.drop_index(op.f('ix_workflow_conditions_workflow_transition_id'), table_name='workflow_conditions')
    op.drop_index(op.f('ix_workflow_conditions_workflow_condition_type_id'), table_name='workflow_conditions')
    op.drop_table('workflow_conditions')
    op.drop_index(op.f('ix_workflow_transitions_workflow_id'), table_name='workflow_transitions')
    op.drop_index(op.f('ix_workflow_transitions_to_workflow_activity_id'), table_name='workflow_transitions')
    op.drop_index(op.f('ix_workflow_transitions_from_workflow_activity_id'), table_name='workflow_transitions')
    op.drop_table('workflow_transitions')
    op.drop_index(op.f('ix_workflow_processes_workflow_id'), table_name='workflow_processes')
    op.drop_index('ix_workflow_processes_status_next_run_at', table_name='workflow_processes')
    op.drop_table('workflow_processes')
    op.drop_table('workflow_activity_parameters')
    op.drop_index(op.f('ix_workflow_activities_workflow_id'), table_name='workflow_activities')
    op.drop_index(op.f('ix_workflow_activities_workflow_activity_type_id'), table_name='workflow_activities')
    op.drop_table('workflow_activities')
    op.drop_index(op.f('ix_workflows_workflow_status_id'), table_name='workflows')
    op.drop_index(op.f('ix_workflows_workflow_priority_id'), table_name='workflows')
    op.drop_index(op.f('ix_workflows_workflow_event_id'), table_name='workflows')
    op.drop_table('workflows')
    op.drop_table('workflow_statuses')
    op.drop_table('workflow_process_statuses')
    op.drop_table('workflow_process_activity_log_statuses')
    op.drop_table('workflow_priorities')
    op.drop_table('workflow_events')
    op.drop_table('workflow_condition_types')
    op.drop_table('workflow_activity_types')

