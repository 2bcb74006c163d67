"""Copy every row of one store into another, empty one: the move from SQLite to
PostgreSQL (docs/scaling-out.md).

    python -m store.copy --from sqlite:///var/bridge.sqlite3 --to postgresql://bridge@db/bridge

Stop the programs that write the source first (``supervisorctl stop all``): the copy
reads one consistent snapshot of the source, and what is written after it would not
be copied. Both stores are migrated to the newest revision first (a pre-Alembic SQLite
file is converted in place, as any program would do at start). The target must be
empty: nothing is merged or overwritten. Everything goes in one transaction of the
target, so a failed copy leaves it empty. Sealed tokens and webhook secrets are copied
as they are: the new hosts need the same ``BRIDGE_ENCRYPTION_KEY`` (in sandbox mode,
the key generated in ``var/encryption.key``). Prints only table names and counts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import sqlalchemy

from store.database import Connection, Store, StoreError

# Kept by the target itself: its own migration record, and change counters its
# triggers bump as the rows arrive.
NOT_COPIED = frozenset({"alembic_version", "schema_version", "table_generations"})
BATCH = 1000
# Tables whose integer key comes from a sequence on PostgreSQL: it must continue after
# the copied ids, or the next insert would meet an id already taken.
SEQUENCED = {"webhook_events": "id", "member_syncs": "id", "rate_slots": "id"}


class TargetNotEmpty(Exception):
    pass


def _tables(conn: Connection) -> dict[str, list[str]]:
    inspector = sqlalchemy.inspect(conn.sa)
    return {
        table: [column["name"] for column in inspector.get_columns(table)]
        for table in sorted(inspector.get_table_names())
        if table not in NOT_COPIED
    }


def _batches(conn: Connection, table: str, columns: list[str]) -> Iterator[list[dict]]:
    result = conn.sa.execute(sqlalchemy.text(f"SELECT {', '.join(columns)} FROM {table}"))
    while chunk := result.fetchmany(BATCH):
        yield [dict(row._mapping) for row in chunk]


def copy(source: Store, target: Store) -> dict[str, int]:
    """Copy every table's rows; ``{table: rows copied}``. Raises ``TargetNotEmpty``."""
    source.migrate()
    target.migrate()
    copied: dict[str, int] = {}
    with source.read() as src, target.transaction(timeout_s=60.0) as dst:
        if src.dialect == "sqlite":
            src.sa.exec_driver_sql("BEGIN")  # one snapshot for every table (ended below)
        try:
            _copy_rows(src, dst, copied)
        finally:
            if src.dialect == "sqlite":
                src.sa.rollback()
    return copied


def _copy_rows(src: Connection, dst: Connection, copied: dict[str, int]) -> None:
    """Refuse a non-empty target, then copy each table in batches; PostgreSQL's sequences
    continue after the copied ids."""
    source_tables, target_tables = _tables(src), _tables(dst)
    for table in target_tables:
        if dst.execute(f"SELECT 1 AS one FROM {table} LIMIT 1").fetchone() is not None:
            raise TargetNotEmpty(f"the target's table {table} has rows: copy into an empty store only")
    for table, columns in source_tables.items():
        if table not in target_tables:
            raise StoreError(f"the target has no table {table}: are both on the same version?")
        wanted = [c for c in columns if c in target_tables[table]]
        insert = f"INSERT INTO {table} ({', '.join(wanted)}) VALUES ({', '.join(':' + c for c in wanted)})"
        copied[table] = 0
        for batch in _batches(src, table, wanted):
            dst.execute(insert, batch)
            copied[table] += len(batch)
    if dst.dialect == "postgresql":
        for table, column in SEQUENCED.items():
            dst.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" COALESCE(MAX({column}), 1), MAX({column}) IS NOT NULL) FROM {table}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store.copy", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", required=True, help="DATABASE_URL of the store to copy")
    parser.add_argument("--to", dest="target", required=True, help="DATABASE_URL of the empty store to fill")
    args = parser.parse_args(argv)
    source, target = Store(args.source), Store(args.target)
    try:
        copied = copy(source, target)
    except (TargetNotEmpty, StoreError) as ex:
        print(f"❌ {ex}: nothing was copied", file=sys.stderr)
        return 1
    finally:
        source.close()
        target.close()
    for table, count in copied.items():
        print(f"{table}: {count} row(s)")
    print(f"copied {sum(copied.values())} row(s) in {len(copied)} table(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
