"""notifications

Reserved for Issue 19 (notifications, webhooks and the inbox). Empty until that work fills it, so the chain of
revisions stays linear while
several branches are built at once.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
