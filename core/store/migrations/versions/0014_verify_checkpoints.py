"""verify checkpoints

Reserved for Issue 18 (verify --since a checkpoint an earlier full verify recorded). Empty until that work
fills it, so the chain of revisions stays linear while
several branches are built at once.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
