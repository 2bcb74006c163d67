"""What the entitlement routes read from the store, cached in this web process until
any process changes the tables behind it.

An access check needs the synced tiers, whether a full sync has finished, and the
user's member rows. Read from SQLite on every request that was four queries, the
whole tiers table decoded from JSON, and the user's rows turned into the rule's
``Membership`` values: most of a check's own time (profile in issue 11). Here one
query per request reads the change counters of ``members``, ``tiers``, ``benefits``
and ``member_syncs`` (``store.generations``: triggers bump them on every write, from
the worker or anyone else); while they have not moved, the tiers, the synced flag and
each user's memberships already read are reused, and once any of them moved, all of
it is read again. So an answer is never older than the last committed write it could
see, exactly as without the cache; time-dependent parts of the rule (the grace
period) are computed per request, never cached.

A user's memberships are cached for at most ``MAX_CACHED_USERS`` users (the oldest
go first), a few hundred bytes each. A store without the counters (-1) is read
through, uncached.
"""

from __future__ import annotations

import dataclasses
import threading

from entitlements import answers, rule
from store import generations, member_sync, members, tiers
from store.database import Store
from store.tiers import BenefitRow, TierRow

WATCHED_TABLES = ("members", "tiers", "benefits", "member_syncs")
MAX_CACHED_USERS = 10_000


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Everything but the user's rows, as of one set of counters."""

    tiers: dict[str, TierRow]
    rule_tiers: dict[str, rule.Tier]
    benefits: dict[str, BenefitRow]
    synced: bool


class _Snapshot:
    """The catalog and the users' memberships read while the counters were ``key``."""

    def __init__(self, key: tuple[int, ...], catalog: Catalog):
        self.key = key
        self.catalog = catalog
        self.memberships: dict[str, tuple[rule.Membership, ...]] = {}


def _read_catalog(store: Store) -> Catalog:
    tier_rows = tiers.all_tiers(store)
    return Catalog(
        tiers=tier_rows,
        rule_tiers=answers.rule_tiers(tier_rows),
        benefits=tiers.all_benefits(store),
        synced=member_sync.synced(store),
    )


def _read_memberships(store: Store, user_id: str) -> tuple[rule.Membership, ...]:
    return tuple(answers.membership_of(row.record) for row in members.of_user(store, user_id))


class EntitlementReads:
    def __init__(self, store: Store, *, max_users: int = MAX_CACHED_USERS):
        self._store = store
        self._max_users = max_users
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def _current(self) -> _Snapshot | None:
        """The snapshot for the counters as they are now (None: the store has none)."""
        key = generations.generations(self._store, WATCHED_TABLES)
        if min(key) < 0:
            return None
        snapshot = self._snapshot
        if snapshot is not None and snapshot.key == key:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and snapshot.key == key:
                return snapshot  # another thread read it meanwhile
            # The counters were read before the rows: a write in between makes the next
            # request see new counters and read again; it can never leave stale rows.
            snapshot = _Snapshot(key, _read_catalog(self._store))
            self._snapshot = snapshot
            return snapshot

    def catalog(self) -> Catalog:
        snapshot = self._current()
        return _read_catalog(self._store) if snapshot is None else snapshot.catalog

    def access_inputs(self, user_id: str) -> tuple[Catalog, tuple[rule.Membership, ...]]:
        """The catalog and the user's memberships, both as of the same counters."""
        snapshot = self._current()
        if snapshot is None:
            return _read_catalog(self._store), _read_memberships(self._store, user_id)
        cached = snapshot.memberships.get(user_id)
        if cached is None:
            cached = _read_memberships(self._store, user_id)
            # Into this snapshot only: if the counters moved meanwhile, it is already
            # replaced and what was read here is dropped with it.
            if len(snapshot.memberships) >= self._max_users:
                try:
                    del snapshot.memberships[next(iter(snapshot.memberships))]
                except (KeyError, RuntimeError, StopIteration):
                    pass  # another thread evicted or inserted meanwhile: the bound still holds roughly
            snapshot.memberships[user_id] = cached
        return snapshot.catalog, cached
