"""bring your own

issue 12 (real data): an imported test split as holdout. No schema change was needed: the split is stored as a
Dataset of purpose "holdout" and its Holdout row is created by a "holdout.import" audit event, so the holdout table
(whose every column the audit chain hashes) keeps its shape. Kept as its own, empty revision.

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
