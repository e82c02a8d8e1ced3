"""student starts

Issue 20: reserved for pretrained / domain pre-trained students and deeper distillation, which needed no schema
change after all (what a student started from and which losses it used live in the run's JSON metrics and
result). Kept as a no-op so the revision chain stays linear.

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
