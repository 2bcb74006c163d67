"""Web's client for several workers: calls spread over every live one.

``WorkerPool`` holds one ``WorkerClient`` per configured endpoint
(``CommonSettings.endpoints``: one per worker process, on this host over ipc:// or on
others over tcp:// with CURVE), each with its own heartbeat and ``Liveness``. A call
goes to the next live worker in turn (round robin); a worker that is down (crashed:
its connection closed; hung: missed heartbeats) gets no new calls until its first
answered beat.

A worker that dies or hangs takes only its own in-flight calls with it, and of
those only the non-idempotent ones fail (503 ``PATREON_SERVICE_UNAVAILABLE`` or 504
``PATREON_SERVICE_TIMEOUT``, as with one worker): an idempotent call (``ActionSpec``)
is retried once on another live worker, as is one a stopping worker refused
(``WORKER_SHUTTING_DOWN``). With every worker down a call fails at once with 503.

The pool offers ``WorkerClient``'s calling interface (``call``, ``send``,
``call_document``, ``send_document``, ``liveness.snapshot()``), so web's resources
take either; ``ping_each`` is for ``/api/patreon/health``.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from typing import Any

import zmq

from wire import protocol
from wire.actions import ACTIONS, Payload
from wire.client import WorkerCallError, WorkerClient, WorkerError, WorkerTimeout, WorkerUnavailable
from wire.codes import WORKER_SHUTTING_DOWN
from wire.curve import ClientOptions

log = logging.getLogger(__name__)


def worker_name(index: int) -> str:
    """The worker's name in status and logs: supervisord's process name."""
    return f"worker_{index:02d}"


class PoolLiveness:
    """The pool's up/down: up while any worker is; each worker's state in ``snapshot``."""

    def __init__(self, peers: Sequence[WorkerClient]):
        self._peers = peers

    @property
    def up(self) -> bool:
        return any(peer.liveness.up for peer in self._peers)

    @property
    def reason(self) -> str:
        return (
            "; ".join(f"{worker_name(i)}: {peer.liveness.reason}" for i, peer in enumerate(self._peers))
            or "no worker configured"
        )

    def snapshot(self) -> dict[str, Any]:
        """The first live worker's fields at the top (one worker: exactly its state, as
        before), and every worker under ``workers``."""
        states = [peer.liveness.snapshot() for peer in self._peers]
        first = next((state for state in states if state["available"]), states[0])
        return {
            **first,
            "available": any(state["available"] for state in states),
            "ready": any(state["ready"] for state in states),
            "reason": None if any(state["available"] for state in states) else self.reason,
            "restarts": sum(state["restarts"] for state in states),
            "workers": [
                {"name": worker_name(i), "endpoint": peer.endpoint, **state}
                for i, (peer, state) in enumerate(zip(self._peers, states, strict=True))
            ],
        }


class WorkerPool:
    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        context: zmq.Context | None = None,
        curve: ClientOptions | None = None,
        peers: Sequence[WorkerClient] | None = None,
    ):
        if peers is None:
            context = context or zmq.Context.instance()
            # retries=0: the pool does the retrying, on another worker.
            peers = [WorkerClient(e, context=context, curve=curve, retries=0) for e in endpoints]
        if not peers:
            raise ValueError("a worker pool needs at least one endpoint")
        self.peers = list(peers)
        self.liveness = PoolLiveness(self.peers)
        self._turn = itertools.count()

    @property
    def endpoint(self) -> str:
        return self.peers[0].endpoint

    def start(self) -> None:
        for peer in self.peers:
            peer.start()

    def close(self) -> None:
        for peer in self.peers:
            peer.close()

    def _order(self, exclude: set[int]) -> list[int]:
        """Live workers, starting with the next one's turn (turns go round the live ones,
        so a dead worker's share is spread evenly over the others)."""
        if len(self.peers) == 1:  # one worker (the default): no turn to take
            return [0] if not exclude and self.peers[0].liveness.up else []
        live = [i for i, peer in enumerate(self.peers) if i not in exclude and peer.liveness.up]
        if not live:
            return []
        # next() on an itertools.count is one C call, atomic under the GIL: no lock needed.
        start = next(self._turn) % len(live)
        return live[start:] + live[:start]

    def reply(
        self,
        action: str,
        data: dict[str, Any] | None,
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
        retry: bool = True,
    ) -> protocol.Reply:
        spec = ACTIONS[action]
        may_retry = spec.idempotent and retry
        tried: set[int] = set()
        last: WorkerError | None = None
        for _attempt in range(2 if may_retry else 1):
            order = self._order(tried)
            if not order:
                if last is not None and len(self.peers) == 1 and isinstance(last, WorkerTimeout):
                    # One worker, still up after a timeout: the old client's one retry.
                    order = [0] if self.peers[0].liveness.up else []
                if not order:
                    break
            index = order[0]
            tried.add(index)
            try:
                return self.peers[index].reply(
                    action, data, timeout_s=timeout_s, request_id=request_id, retry=False
                )
            except WorkerCallError as ex:
                if ex.code != WORKER_SHUTTING_DOWN:
                    raise
                last = ex
            except (WorkerUnavailable, WorkerTimeout) as ex:
                last = ex
            if may_retry:
                log.info(
                    "retrying %s on another worker after %s (%s)",
                    action,
                    type(last).__name__,
                    worker_name(index),
                )
        if last is not None:
            raise last
        raise WorkerUnavailable(self.liveness.reason)

    # -- WorkerClient's calling interface --------------------------------------------------
    def call(self, action: str, data: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        reply = self.reply(action, data, **options)
        try:
            return reply.payload()
        except (ValueError, RecursionError) as ex:
            raise WorkerCallError(
                {
                    "code": protocol.BAD_FRAME,
                    "message": "bad reply from worker: document is not JSON",
                    "status": 502,
                }
            ) from ex

    def call_document(self, action: str, data: dict[str, Any] | None = None, **options: Any) -> bytes:
        reply = self.reply(action, data, **options)
        if reply.body is not None:
            return reply.body
        return json.dumps(reply.data, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def send(self, request: Payload, **options: Any) -> dict[str, Any]:
        return self.call(request.spec.name, request.data(), **options)

    def send_document(self, request: Payload, **options: Any) -> bytes:
        return self.call_document(request.spec.name, request.data(), **options)

    def ping_each(self, timeout_s: float, request_id: str | None = None) -> list[dict[str, Any]]:
        """Ping every worker, one after another (health): name, healthy, and the reason if not."""
        results = []
        for i, peer in enumerate(self.peers):
            entry: dict[str, Any] = {"name": worker_name(i)}
            try:
                pong = peer.call("ping", {}, timeout_s=timeout_s, request_id=request_id, retry=False)
            except WorkerError as ex:
                entry.update(healthy=False, code=ex.code, reason=str(ex))
            else:
                entry.update(healthy=True, pid=pong.get("pid"))
            results.append(entry)
        return results
