"""verify checkpoints

issue 18: verify_checkpoint, how far each full `stillroom audit verify` found the record intact, so
`stillroom audit verify --since last` walks only the events after it.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'verify_checkpoint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('head_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('anchor_id', sa.Integer(), nullable=False),
        sa.Column('file_offset', sa.Integer(), nullable=False),
        sa.Column('row_ids', sa.Text(), nullable=False),
        sa.Column('verified_at', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('verify_checkpoint')
