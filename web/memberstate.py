"""``GET /api/patreon/members/{memberId}/state``: one member as the member table holds
it (``store.members``: Patreon's state from syncs and refreshes, the worker's
``members.state``), in the fields the retired webhook-ordered table had where they
map. Server key required."""

from __future__ import annotations

import falcon

from settings.config import WebSettings
from web.errors import ApiError
from web.policy import require_server_key
from wire import actions
from wire.client import WorkerClient
from wire.codes import INVALID_MEMBER_ID

MAX_MEMBER_ID_CHARS = 128


@falcon.before(require_server_key)
class MemberStateResource:
    def __init__(self, config: WebSettings, worker: WorkerClient):
        self.config = config
        self._worker = worker

    def on_get(self, req: falcon.Request, resp: falcon.Response, memberId: str) -> None:
        if not memberId or len(memberId) > MAX_MEMBER_ID_CHARS:
            raise ApiError(400, INVALID_MEMBER_ID, "memberId is not a member id")
        result = self._worker.send(
            actions.MembersState(member_id=memberId), request_id=req.context.request_id
        )
        resp.media = {"success": True, **result}
