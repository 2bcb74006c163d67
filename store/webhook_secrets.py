"""Secrets of the webhooks created through this service: the owner of ``webhook_secrets``.

Patreon signs each delivery with the secret of the webhook it belongs to, and shows
that secret when the webhook is created. ``webhooks.create`` saves it here;
``webhooks.delete`` removes it; the receiver in web verifies deliveries against
``all_secrets(store)`` (plus ``PATREON_WEBHOOK_SECRET``). Secrets are never logged,
and are stored sealed by ``store.cipher`` (store/encryption.py).
The table is created by store/migrations/versions/0001_baseline.py.
"""

from __future__ import annotations

import time

from store.database import Store


def save(store: Store, webhook_id: str, secret: str, *, now: float | None = None) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO webhook_secrets (webhook_id, secret, created_at) VALUES (:id, :secret, :at)"
            " ON CONFLICT (webhook_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at",
            {"id": webhook_id, "secret": store.cipher.seal(secret), "at": time.time() if now is None else now},
        )


def delete(store: Store, webhook_id: str) -> bool:
    with store.transaction() as conn:
        return conn.execute("DELETE FROM webhook_secrets WHERE webhook_id = :id", {"id": webhook_id}).rowcount > 0


def all_secrets(store: Store) -> list[str]:
    """Every stored secret, newest first, each once."""
    with store.read() as conn:
        rows = conn.execute("SELECT secret FROM webhook_secrets ORDER BY created_at DESC, webhook_id").fetchall()
    return list(dict.fromkeys(store.cipher.open(row["secret"]) for row in rows))


def known_ids(store: Store) -> set[str]:
    with store.read() as conn:
        rows = conn.execute("SELECT webhook_id FROM webhook_secrets").fetchall()
    return {row["webhook_id"] for row in rows}
