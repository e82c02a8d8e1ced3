"""job workers

Issue 20: `stillroom worker` runs queued jobs on any host that reaches the database. A job handed to the workers
(``for_workers``) is claimed by one worker (``worker``: host, pid and a random tag), heartbeated while it runs,
and taken over by another worker when its heartbeat goes quiet; ``attempts`` counts the claims, so a job whose
workers keep dying is failed after the configured number instead of looping.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('for_workers', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=96), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_job_claim', ['status', 'for_workers'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_claim')
        batch_op.drop_column('attempts')
        batch_op.drop_column('worker')
        batch_op.drop_column('for_workers')
