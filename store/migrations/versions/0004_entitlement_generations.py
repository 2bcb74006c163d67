"""Change counters (store.generations) on the tables the entitlement answers read
(legacy migration 211, issue 11: access checks at 1,000/s), so web caches their rows
per process and re-reads them only after any process changed them.

Revision ID: 0004
Revises: 0003
Owner: store.generations

Idempotent, because a SQLite file may have run legacy migration 211 before Alembic:
rows ON CONFLICT DO NOTHING, SQLite triggers IF NOT EXISTS (the names 211 used).
PostgreSQL: one statement trigger per table on revision 0001's bump_table_generation().
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("members", "tiers", "benefits", "member_syncs")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        op.execute(
            f"INSERT INTO table_generations (name, generation) VALUES ('{table}', 0) ON CONFLICT (name) DO NOTHING"
        )
        if postgresql:
            op.execute(
                f"CREATE TRIGGER {table}_generation AFTER INSERT OR UPDATE OR DELETE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION bump_table_generation()"
            )
            continue
        for change in ("insert", "update", "delete"):
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_{change}_generation AFTER {change.upper()} ON {table} BEGIN"
                f" UPDATE table_generations SET generation = generation + 1 WHERE name = '{table}';"
                " END"
            )


def downgrade() -> None:
    raise NotImplementedError("the store migrates forward only")
