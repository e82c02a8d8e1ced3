"""vouched reads

Reserved for issue 16 (one vouching reader, the fixed legacy boundary); left empty when that work needs no schema change, so the chain of
revisions stays linear.

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
