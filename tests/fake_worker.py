"""A stand-in for ``WorkerClient`` in web unit tests.

``call`` has the real signature, looks the action up in ``protocol.ACTIONS`` as the
real one does (KeyError for an undeclared action), passes the data through a JSON
round trip (what crosses the wire), and returns a JSON-decoded dict (``call``) or
JSON bytes (``call_document``) or raises the real error types: ``WorkerCallError`` built from an error dict shaped like the
worker's reply, ``WorkerUnavailable``, ``WorkerTimeout``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from wire import protocol
from wire.actions import Payload
from wire.client import Liveness, WorkerCallError

Answer = dict[str, Any] | Exception | Callable[[dict[str, Any]], dict[str, Any]]


def call_error(
    code: str, status: int, message: str = "", retry_after: float | None = None
) -> WorkerCallError:
    error: dict[str, Any] = {"code": code, "message": message or code, "status": status}
    if retry_after is not None:
        error["retry_after"] = retry_after
    return WorkerCallError(error)


class FakeWorker:
    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.calls: list[dict[str, Any]] = []
        self.liveness = Liveness()
        self.liveness.beat_ok({"pid": 1})

    def answer(self, action: str, answer: Answer) -> None:
        assert action in protocol.ACTIONS, action
        self.answers[action] = answer

    def send(self, request: Payload, **options: Any) -> dict[str, Any]:
        return self.call(request.spec.name, request.data(), **options)

    def send_document(self, request: Payload, **options: Any) -> bytes:
        return self.call_document(request.spec.name, request.data(), **options)

    def call(
        self,
        action: str,
        data: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        spec = protocol.ACTIONS[action]
        data = json.loads(json.dumps(data or {}))
        self.calls.append(
            {
                "action": action,
                "data": data,
                "timeout_s": spec.timeout_s if timeout_s is None else timeout_s,
                "request_id": request_id,
                "retry": retry,
            }
        )
        answer = self.answers.get(action, {})
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            answer = answer(data)
        return json.loads(json.dumps(answer))

    def call_document(
        self,
        action: str,
        data: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
        retry: bool = True,
    ) -> bytes:
        """The answer as the JSON bytes the real client hands over, undecoded."""
        answer = self.call(action, data, timeout_s=timeout_s, request_id=request_id, retry=retry)
        return json.dumps(answer, separators=(",", ":")).encode()

    def last(self, action: str) -> dict[str, Any]:
        return [c for c in self.calls if c["action"] == action][-1]
