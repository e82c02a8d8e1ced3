"""login sessions

Reserved for Issue 19 (a login that survives a refresh, ended by logout or a password reset). Empty until that
work fills it, so the chain of revisions stays linear while
several branches are built at once.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
