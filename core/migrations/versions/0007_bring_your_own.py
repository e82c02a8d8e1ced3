"""bring your own

issue 12 (real data): an imported test split as holdout. Kept as its own revision so the work of one issue lands in one
migration; empty revisions are harmless.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
