"""mailbox leases and processing attempts (issue 9); OUT-1 cap indexes, MAIL-2 flag (issue 10)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mailbox_leases',
    sa.Column('mailbox', sa.String(length=100), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_read_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('mailbox', name=op.f('pk_mailbox_leases'))
    )
    with op.batch_alter_table('inbound_messages') as batch:
        batch.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('sender_check', sa.String(length=300), server_default='', nullable=False))
    with op.batch_alter_table('outbox_items') as batch:
        batch.create_index('ix_outbox_ticket_auto', ['ticket_id', 'auto', 'created_at'], unique=False)
        batch.create_index('ix_outbox_auto_created', ['auto', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_items') as batch:
        batch.drop_index('ix_outbox_auto_created')
        batch.drop_index('ix_outbox_ticket_auto')
    with op.batch_alter_table('tickets') as batch:
        batch.drop_column('sender_check')
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_column('attempts')
    op.drop_table('mailbox_leases')
