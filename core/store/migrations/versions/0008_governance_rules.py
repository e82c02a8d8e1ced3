"""governance rules

Reserved for issue 9's gate and review rules, which turned out to need no schema change (the gate
spec is JSON). Kept empty so the chain of revisions already applied elsewhere stays linear.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
