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
    # Plain ADD COLUMN, not a batch: SQLite would rebuild the job table, which other tables reference.
    op.add_column('job', sa.Column('for_workers', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('job', sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=96), nullable=True))
    op.add_column('job', sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('ix_job_claim', 'job', ['status', 'for_workers'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_job_claim', table_name='job')
    for column in ('attempts', 'worker', 'for_workers'):
        op.drop_column('job', column)
