"""The schema as the pre-Alembic migrations left it (store.database.MIGRATIONS 1-400).

Revision ID: 0001
Revises:
Owners: tokens (store.tokens), webhook_secrets (store.webhook_secrets), sessions and
oauth_states (web.sessions), webhook_events (store.webhook_events), member_state
(store.member_state), members (store.members), tiers and benefits (store.tiers),
member_refresh (store.member_refresh), member_syncs (store.member_sync),
table_generations (store.generations).

A SQLite file from before Alembic already has all of this and is stamped at this
revision instead of running it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TEXT, INT, REAL, BLOB = sa.Text, sa.Integer, sa.Float, sa.LargeBinary


def _zero():
    return sa.text("0")


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("principal", TEXT, primary_key=True),
        sa.Column("access_token", TEXT, nullable=False),
        sa.Column("refresh_token", TEXT),
        sa.Column("expires_at", REAL),
        sa.Column("scope", TEXT, nullable=False, server_default=""),
        sa.Column("token_type", TEXT, nullable=False, server_default="Bearer"),
        sa.Column("patreon_user_id", TEXT),
        sa.Column("seed", TEXT),
        sa.Column("updated_at", REAL, nullable=False),
    )
    op.create_table(
        "webhook_secrets",
        sa.Column("webhook_id", TEXT, primary_key=True),
        sa.Column("secret", TEXT, nullable=False),
        sa.Column("created_at", REAL, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", TEXT, primary_key=True),
        sa.Column("user_id", TEXT),
        sa.Column("campaign_ids", TEXT, nullable=False, server_default="[]"),
        sa.Column("created_at", REAL, nullable=False),
        sa.Column("expires_at", REAL, nullable=False),
    )
    op.create_index("sessions_expiry", "sessions", ["expires_at"])
    op.create_table(
        "oauth_states",
        sa.Column("state", TEXT, primary_key=True),
        sa.Column("session_id", TEXT, nullable=False),
        sa.Column("redirect_uri", TEXT, nullable=False),
        sa.Column("scopes", TEXT, nullable=False),
        sa.Column("expires_at", REAL, nullable=False),
    )
    op.create_index("oauth_states_session", "oauth_states", ["session_id"])
    op.create_index("oauth_states_expiry", "oauth_states", ["expires_at"])
    op.create_table(
        "webhook_events",
        # AUTOINCREMENT on SQLite: an id is never reused, even after the newest row goes.
        sa.Column("id", INT, primary_key=True, autoincrement=True),
        sa.Column("event", TEXT, nullable=False),
        sa.Column("body", BLOB, nullable=False),
        sa.Column("dedupe_key", TEXT, nullable=False, unique=True),
        sa.Column("campaign_id", TEXT),
        sa.Column("received_at", TEXT, nullable=False),
        sa.Column("processed_at", TEXT),
        sa.Column("attempts", INT, nullable=False, server_default=_zero()),
        sa.Column("last_error", TEXT),
        sqlite_autoincrement=True,
    )
    unprocessed = sa.text("processed_at IS NULL")
    op.create_index(
        "webhook_events_unprocessed",
        "webhook_events",
        ["id"],
        sqlite_where=unprocessed,
        postgresql_where=unprocessed,
    )
    op.create_index("webhook_events_campaign", "webhook_events", ["campaign_id", "id"])
    op.create_table(
        "member_state",
        sa.Column("member_id", TEXT, primary_key=True),
        sa.Column("campaign_id", TEXT),
        sa.Column("user_id", TEXT),
        sa.Column("patron_status", TEXT),
        sa.Column("last_charge_status", TEXT),
        sa.Column("entitled_tier_ids", TEXT, nullable=False, server_default="[]"),
        sa.Column("currently_entitled_amount_cents", INT),
        sa.Column("will_pay_amount_cents", INT),
        sa.Column("deleted", INT, nullable=False, server_default=_zero()),
        sa.Column("last_event", TEXT, nullable=False),
        sa.Column("last_event_id", INT, nullable=False),
        sa.Column("last_event_at", TEXT, nullable=False),
        sa.Column("updated_at", TEXT, nullable=False),
    )
    op.create_index("member_state_campaign", "member_state", ["campaign_id"])
    op.create_table(
        "members",
        sa.Column("member_id", TEXT, primary_key=True),
        sa.Column("campaign_id", TEXT, nullable=False),
        sa.Column("user_id", TEXT),
        sa.Column("patron_status", TEXT),
        sa.Column("last_charge_status", TEXT),
        sa.Column("last_charge_date", TEXT),
        sa.Column("next_charge_date", TEXT),
        sa.Column("entitled_tier_ids", TEXT, nullable=False, server_default="[]"),
        sa.Column("entitled_amount_cents", INT, nullable=False, server_default=_zero()),
        sa.Column("will_pay_amount_cents", INT),
        sa.Column("pledge_relationship_start", TEXT),
        sa.Column("lifetime_support_cents", INT),
        sa.Column("is_free_trial", INT, nullable=False, server_default=_zero()),
        sa.Column("is_gifted", INT, nullable=False, server_default=_zero()),
        sa.Column("deleted", INT, nullable=False, server_default=_zero()),
        sa.Column("email", TEXT),
        sa.Column("full_name", TEXT),
        sa.Column("source", TEXT, nullable=False),
        sa.Column("source_at", TEXT, nullable=False),
        sa.Column("sync_id", INT),
        sa.Column("event_id", INT),
    )
    op.create_index("members_user", "members", ["user_id"])
    op.create_index("members_campaign", "members", ["campaign_id", "sync_id"])
    op.create_table(
        "tiers",
        sa.Column("id", TEXT, primary_key=True),
        sa.Column("campaign_id", TEXT, nullable=False),
        sa.Column("title", TEXT),
        sa.Column("amount_cents", INT, nullable=False, server_default=_zero()),
        sa.Column("published", INT, nullable=False, server_default=_zero()),
        sa.Column("deleted", INT, nullable=False, server_default=_zero()),
        sa.Column("benefit_ids", TEXT, nullable=False, server_default="[]"),
        sa.Column("updated_at", TEXT, nullable=False),
    )
    op.create_table(
        "benefits",
        sa.Column("id", TEXT, primary_key=True),
        sa.Column("campaign_id", TEXT, nullable=False),
        sa.Column("title", TEXT),
        sa.Column("deleted", INT, nullable=False, server_default=_zero()),
        sa.Column("updated_at", TEXT, nullable=False),
    )
    op.create_table(
        "member_refresh",
        sa.Column("member_id", TEXT, primary_key=True),
        sa.Column("campaign_id", TEXT),
        sa.Column("event_id", INT),
        sa.Column("due_at", REAL, nullable=False),
        sa.Column("attempts", INT, nullable=False, server_default=_zero()),
    )
    op.create_index("member_refresh_due", "member_refresh", ["due_at"])
    op.create_table(
        "member_syncs",
        sa.Column("id", INT, primary_key=True, autoincrement=True),
        sa.Column("reason", TEXT, nullable=False),
        sa.Column("requested_at", TEXT, nullable=False),
        sa.Column("started_at", TEXT),
        sa.Column("finished_at", TEXT),
        sa.Column("pages", INT, nullable=False, server_default=_zero()),
        sa.Column("members", INT, nullable=False, server_default=_zero()),
        sa.Column("drift", INT, nullable=False, server_default=_zero()),
        sa.Column("former", INT, nullable=False, server_default=_zero()),
        sa.Column("error", TEXT),
        sqlite_autoincrement=True,
    )
    # A change counter per table, bumped by triggers whichever process writes
    # (store.generations).
    op.create_table(
        "table_generations",
        sa.Column("name", TEXT, primary_key=True),
        sa.Column("generation", INT, nullable=False, server_default=_zero()),
    )
    op.execute("INSERT INTO table_generations (name, generation) VALUES ('webhook_secrets', 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_table_generation() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN UPDATE table_generations SET generation = generation + 1 WHERE name = TG_TABLE_NAME;"
            " RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER webhook_secrets_changed AFTER INSERT OR UPDATE OR DELETE ON webhook_secrets"
            " FOR EACH STATEMENT EXECUTE FUNCTION bump_table_generation()"
        )
    else:
        for change, name in (("INSERT", "inserted"), ("UPDATE", "updated"), ("DELETE", "deleted")):
            op.execute(
                f"CREATE TRIGGER webhook_secrets_{name} AFTER {change} ON webhook_secrets BEGIN"
                " UPDATE table_generations SET generation = generation + 1 WHERE name = 'webhook_secrets';"
                " END"
            )


def downgrade() -> None:
    raise NotImplementedError("the store migrates forward only")
