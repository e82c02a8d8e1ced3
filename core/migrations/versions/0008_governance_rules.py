"""governance rules

issue 9 (gate rules and review visibility), if they need schema. Kept as its own revision so the work of one issue lands in one
migration; empty revisions are harmless.

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
