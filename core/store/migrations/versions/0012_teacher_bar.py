"""teacher bar

Issue 16 (the teacher's figures from answers fixed before the student's file) needs no schema change: the
trusted teacher run is chosen from the runs already stored and named in the report. Kept empty so the chain
of revisions stays linear.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
