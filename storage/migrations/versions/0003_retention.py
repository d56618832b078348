"""retention (issue 13): when raw letters, sent letters and files were deleted, when a record was
anonymised

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages') as batch:
        batch.add_column(sa.Column('raw_deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index('ix_inbound_ticket', ['ticket_id'], unique=False)
        batch.create_index('ix_inbound_received', ['received_at'], unique=False)
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('anonymised_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('attachments') as batch:
        batch.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('outbox_items') as batch:
        batch.add_column(sa.Column('payload_deleted_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_items') as batch:
        batch.drop_column('payload_deleted_at')
    with op.batch_alter_table('attachments') as batch:
        batch.drop_column('deleted_at')
    with op.batch_alter_table('tickets') as batch:
        batch.drop_column('anonymised_at')
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_index('ix_inbound_received')
        batch.drop_index('ix_inbound_ticket')
        batch.drop_column('raw_deleted_at')
