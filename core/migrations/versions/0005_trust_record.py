"""trust record

issue 9 (trust you can check): anchors, artifacts, audited people and roles. Kept as its own revision so the work of one issue lands in one
migration; empty revisions are harmless.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
