"""Retire the webhook-ordered ``member_state`` (legacy migration 210, issue 11): the
member table (store.members) replaced it; nothing reads or writes it any more.

Revision ID: 0003
Revises: 0002
Owner: store.members
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF EXISTS: a SQLite file that ran legacy migration 210 before Alembic has none.
    op.execute("DROP TABLE IF EXISTS member_state")


def downgrade() -> None:
    raise NotImplementedError("the store migrates forward only")
