"""PostgreSQL: every commit that appends to the event log notifies ``bridge_events``.

Revision ID: 0002
Revises: 0001
Owner: store.webhook_events (the table); live.notify listens (``PostgresWakeupListener``).

A statement trigger: one ``pg_notify`` per inserting statement, and PostgreSQL
delivers a transaction's identical notifications once, at its commit, to every
listener on every host: the wake-up of live programs that share the store. SQLite
has no such thing and needs none (one host: web wakes live over ZeroMQ).
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION notify_webhook_events() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM pg_notify('bridge_events', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER webhook_events_notify AFTER INSERT ON webhook_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION notify_webhook_events()"
    )


def downgrade() -> None:
    raise NotImplementedError("the store migrates forward only")
