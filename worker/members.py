"""The worker's two member programs, built together: the per-member refresher
(``worker.member_refresh``) and the full sync (``worker.member_sync``), sharing one
``MemberWriter`` and the worker's one rate-limited Patreon client."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from settings.config import WorkerSettings
from store.database import Store
from worker.lease_holder import worker_holder
from worker.member_refresh import MemberRefresher, PatreonReader
from worker.member_sync import MemberSync
from worker.member_writer import MemberWriter


class MemberPrograms:
    def __init__(self, config: WorkerSettings, store: Store, api: Any):
        writer = MemberWriter(timedelta(seconds=config.entitlement_grace_s))
        self.sync = MemberSync(
            store,
            api,
            writer,
            interval_s=config.member_sync_interval_s,
            keep_pii=config.member_pii,
            holder=worker_holder(config),  # one sync at a time across workers
        )
        self.refresher = MemberRefresher(
            store,
            PatreonReader(api),
            writer,
            keep_pii=config.member_pii,
            request_sync=self.sync.request,
            holder=worker_holder(config),  # one refresher at a time across workers
        )

    def start(self) -> None:
        self.refresher.start()
        self.sync.start()

    def stop(self) -> None:
        self.refresher.stop()
        self.sync.stop()

    def join(self) -> None:
        self.refresher.join()
        self.sync.join()
