"""rounds and confidence

Issue 16 (rounds closed by decisions, shipping without confidence) needs no schema change: a decided round is
read from the decisions already stored, and "serve every answer" is a threshold proposal (threshold 0, nothing
falling back) whose audit event names the choice. Kept empty so the chain of revisions stays linear.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
