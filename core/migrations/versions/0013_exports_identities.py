"""exports and identities

Reserved for issue 16 (job credentials, safe exports); left empty when that work needs no schema change, so the chain of
revisions stays linear.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
