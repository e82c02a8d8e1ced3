"""bring your own student

issue 10 (students trained elsewhere): holdout versions, declared latency. Kept as its own revision so the work of one issue lands in one
migration; empty revisions are harmless.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
