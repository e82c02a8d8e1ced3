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


def _string(n: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n)


def _told(table: str, *columns: sa.Column[object], indexed: tuple[str, ...]) -> None:
    """A table of core.store.models.ToldEvent's columns (the event, its link, its sentence) and its own."""
    op.create_table(table,
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', _string(32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('page', _string(32), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('dedupe_key', _string(200), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    *columns,
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluation.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in ('project_id', 'dedupe_key', *indexed):
            batch_op.create_index(batch_op.f(f'ix_{table}_{column}'), [column], unique=False)


def upgrade() -> None:
    when = sqlmodel.sql.sqltypes.UTCDateTime()
    _told('notification',
          sa.Column('recipient_id', sa.Integer(), sa.ForeignKey('user.id'), nullable=False),
          sa.Column('read_at', when, nullable=True), indexed=('recipient_id',))
    op.create_table('webhook_subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('shown', _string(200), nullable=False),
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
    _told('webhook_delivery',
          sa.Column('subscription_id', sa.Integer(), sa.ForeignKey('webhook_subscription.id'), nullable=False),
          sa.Column('status', _string(16), nullable=False),
          sa.Column('attempts', sa.Integer(), nullable=False),
          sa.Column('next_attempt_at', when, nullable=False),
          sa.Column('last_status_code', sa.Integer(), nullable=True),
          sa.Column('last_error', sa.Text(), nullable=False),
          sa.Column('finished_at', when, nullable=True), indexed=('subscription_id', 'status'))
    op.create_table('webhook_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
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
