"""request log table

Reserved for Issue 18 (the request log in PostgreSQL for replicas on several hosts). Empty until that work
fills it, so the chain of revisions stays linear while
several branches are built at once.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
