"""webhook URLs out of the database

A webhook URL often is its own secret (Slack's path). The subscription kept it in clear; now it keeps only the
URL's SHA-256 (``url_sha256``, the fingerprint its ``webhook.add`` event already recorded) and the sender finds
the URL itself on STILLROOM_WEBHOOK_URLS at each try. Existing rows are hashed from the URL they held, then the
URL column is dropped (SQLite 3.35+ and PostgreSQL drop a column in place). A URL stored in another spelling
than the list's (host case, a trailing slash) is no longer found and sends nothing, saying so: add it again.
Downgrading cannot bring the URLs back: the column returns empty, and such a subscription sends nothing until it
is added again.

Revision ID: 0020
Revises: 0019
"""

import hashlib

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('webhook_subscription', sa.Column('url_sha256', sqlmodel.sql.sqltypes.AutoString(length=64),
                                                    nullable=False, server_default=''))
    conn = op.get_bind()
    table = sa.table('webhook_subscription', sa.column('id', sa.Integer()), sa.column('url', sa.Text()),
                     sa.column('url_sha256', sa.String()))
    for row_id, url in conn.execute(sa.select(table.c.id, table.c.url)).all():
        digest = hashlib.sha256((url or '').strip().encode('utf-8')).hexdigest()
        conn.execute(table.update().where(table.c.id == row_id).values(url_sha256=digest))
    op.drop_column('webhook_subscription', 'url')


def downgrade() -> None:
    op.add_column('webhook_subscription', sa.Column('url', sa.Text(), nullable=False, server_default=''))
    op.drop_column('webhook_subscription', 'url_sha256')
