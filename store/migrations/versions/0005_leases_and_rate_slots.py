"""Several workers on one store (legacy migration 500, issue 13): leases
(store.leases) so one worker at a time runs the member sync, the event consumer, the
token sweep and each token refresh; rate slots (store.rate_slots) so every worker
shares Patreon's budget.

Revision ID: 0005
Revises: 0004
Owners: leases (store.leases), rate_slots (store.rate_slots)

IF NOT EXISTS: a SQLite file may have run legacy migration 500 before Alembic.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    key = "id SERIAL PRIMARY KEY" if postgresql else "id INTEGER PRIMARY KEY AUTOINCREMENT"
    real = "DOUBLE PRECISION" if postgresql else "REAL"
    op.execute(
        f"CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at {real} NOT NULL)"
    )
    op.execute(
        f"CREATE TABLE IF NOT EXISTS rate_slots ({key}, window_key TEXT NOT NULL,"
        f" sent_at {real} NOT NULL, done_at {real})"
    )
    op.execute("CREATE INDEX IF NOT EXISTS rate_slots_window ON rate_slots (window_key, sent_at)")


def downgrade() -> None:
    raise NotImplementedError("the store migrates forward only")
