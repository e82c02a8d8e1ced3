"""student starts

Issue 20: reserved for pretrained / domain pre-trained students and deeper distillation. Empty until that work fills it.

Revision ID: 0019
Revises: 0018
"""

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
