"""Signed webhook deliveries as Patreon sends them, each one new to the store.

The bodies are the sandbox's own member payloads (``sandbox.webhooks.member_payload``
over a small generated world: about 3 KiB of JSON:API each); every delivery gets a
distinct ``note`` so the receiver's dedupe (a hash of event and body) stores each
one. Benchmarks 3 and 6 share this.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading

from sandbox.data import World
from sandbox.webhooks import member_payload

WORLD_SEED = 7
WORLD_MEMBERS = 100
CAMPAIGN_ID = "1001"
TRIGGER = "members:pledge:update"
RECEIVER_PATH = "/api/patreon/webhooks/patreon"


class Deliveries:
    """A thread-safe source of (body, headers) pairs, never the same body twice."""

    def __init__(self, secret: str, tag: str):
        world = World.generate(WORLD_SEED, WORLD_MEMBERS)
        self._documents = [
            json.loads(member_payload(world, member, "http://127.0.0.1"))
            for member in world.members_of(CAMPAIGN_ID)
        ]
        self._secret = secret.encode()
        self._tag = tag
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            n = next(self._counter)
        document = self._documents[n % len(self._documents)]
        # Shallow copies down to the attributes: the shared templates stay untouched.
        data = {
            **document["data"],
            "attributes": {**document["data"]["attributes"], "note": f"{self._tag} {n}"},
        }
        body = json.dumps({**document, "data": data}, separators=(",", ":")).encode()
        signature = hmac.new(self._secret, body, hashlib.md5).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Patreon-Event": TRIGGER,
            "X-Patreon-Signature": signature,
        }
        return body, headers
