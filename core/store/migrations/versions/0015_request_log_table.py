"""request log table

Issue 18: the request log in PostgreSQL, shared by replicas of ``stillroom serve`` on several hosts
(core.serving.requestlog inserts in batches, core.rollout.logs reads). Created on SQLite too, where it stays
empty: there the log is the JSONL files.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('request_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('record', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.create_index('ix_request_log_project_kind_ts', ['project_id', 'kind', 'ts'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_log', schema=None) as batch_op:
        batch_op.drop_index('ix_request_log_project_kind_ts')
    op.drop_table('request_log')
