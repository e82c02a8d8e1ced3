"""vouched reads

Issue 16 (one vouching reader, the fixed legacy boundary) needs no schema change: checkpoint lines name the
events their commit wrote, and the legacy boundary is the event migration 0005 anchored. Kept empty so the
chain of revisions stays linear.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
