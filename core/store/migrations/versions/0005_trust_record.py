"""trust record

issue 9 (trust you can check): anchors, artifacts, audited people and roles. Kept as its own
revision so the work of one issue lands in one
migration; empty revisions are harmless.

Adds each audit event's row hash and HMAC, and the append-only anchor table. The first anchor marks where
the chain stood at this upgrade: events up to it carry no row hash and have no anchors of their own.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('mac', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index('ix_audit_event_entity', ['entity', 'entity_id'], unique=False)
    op.create_table('audit_anchor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('head_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('entity_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_anchor', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_anchor_event_id'), ['event_id'], unique=False)
    conn = op.get_bind()
    last = conn.execute(sa.text("SELECT id, hash FROM audit_event ORDER BY id DESC LIMIT 1")).first()
    conn.execute(
        sa.text("INSERT INTO audit_anchor (event_id, head_hash, entity, entity_id, created_at) "
                "VALUES (:e, :h, 'migration', '0005', CURRENT_TIMESTAMP)"),
        {"e": last[0] if last else 0, "h": last[1] if last else "0" * 64},
    )


def downgrade() -> None:
    op.drop_table('audit_anchor')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_entity')
        batch_op.drop_column('mac')
        batch_op.drop_column('row_hash')
