"""notifications

Issue 19 (notifications, webhooks and the inbox): each person's notifications, the admin's webhook
subscriptions, their deliveries (the outbox) and every try of each (append-only; never a body).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    text, when = sa.Text(), sqlmodel.sql.sqltypes.UTCDateTime()

    def string(n: int) -> sqlmodel.sql.sqltypes.AutoString:
        return sqlmodel.sql.sqltypes.AutoString(length=n)

    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipient_id', sa.Integer(), nullable=False),
    sa.Column('kind', string(32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('page', string(32), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=True),
    sa.Column('text', text, nullable=False),
    sa.Column('dedupe_key', string(200), nullable=True),
    sa.Column('created_at', when, nullable=False),
    sa.Column('read_at', when, nullable=True),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluation.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.ForeignKeyConstraint(['recipient_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_recipient_id'), ['recipient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_dedupe_key'), ['dedupe_key'], unique=False)
    op.create_table('webhook_subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', text, nullable=False),
    sa.Column('shown', string(200), nullable=False),
    sa.Column('kinds', sa.JSON(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', when, nullable=False),
    sa.Column('removed_at', when, nullable=True),
    sa.Column('removed_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['user.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.ForeignKeyConstraint(['removed_by'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('webhook_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('kind', string(32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('page', string(32), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=True),
    sa.Column('text', text, nullable=False),
    sa.Column('dedupe_key', string(200), nullable=True),
    sa.Column('status', string(16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', when, nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', text, nullable=False),
    sa.Column('created_at', when, nullable=False),
    sa.Column('finished_at', when, nullable=True),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluation.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscription.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_delivery_subscription_id'), ['subscription_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_dedupe_key'), ['dedupe_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_status'), ['status'], unique=False)
    op.create_table('webhook_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', text, nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('at', when, nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_delivery.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_attempt_delivery_id'), ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_table('webhook_attempt')
    op.drop_table('webhook_delivery')
    op.drop_table('webhook_subscription')
    op.drop_table('notification')
