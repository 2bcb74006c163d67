"""The Patreon actions through the real registry (frames in, frames out), with a fake
PatreonHttp that answers like Patreon with real PatreonResponses: login, reads with
defaults, every page with a cursor loop, error mapping, and webhook management."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from patreon_client.http import PatreonResponse, upstream_error
from patreon_client.oauth import OAuthClient
from settings.config import load_config
from store import webhook_secrets
from store.tokens import CREATOR, session_principal
from wire import protocol
from wire.protocol import ActionError
from worker.patreon_actions import PatreonActions, attach
from worker.patreon_api import PatreonApi
from worker.tokens import TokenStore

NO_DOTENV = Path("/nonexistent/.env")
SESSION_ID = "S" * 43
MEMBER_ID = "5f1b8d4e-0c1a-4b9b-9a6e-2f3c4d5e6f70"


def resp(status: int, body: Any = None, headers: dict | None = None) -> PatreonResponse:
    # As PatreonHttp builds it: the parsed body and the bytes it came from.
    content = b"" if body is None else json.dumps(body).encode()
    return PatreonResponse(status, CaseInsensitiveDict(headers or {}), body, None, content)


def members_page(start: int, count: int, total: int, cursor: str | None) -> dict:
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(start, min(start + count, total))]
    return {
        "data": [{"type": "member", "id": i, "attributes": {}} for i in ids],
        "included": [{"type": "tier", "id": "t1", "attributes": {}}],
        "meta": {"pagination": {"total": total, "cursors": {"next": cursor}}},
    }


class FakePatreon:
    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.routes: dict[tuple[str, str], Any] = {}
        self.valid_access = {"creator-access", "user-access"}

    def route(self, method: str, pattern: str, answer) -> None:
        self.routes[(method, pattern)] = answer

    def request(
        self,
        method,
        path,
        *,
        deadline,
        token=None,
        rate_key=None,
        params=None,
        json_body=None,
        form=None,
        parse_json=True,
    ):
        call = {
            "method": method,
            "path": path,
            "token": token,
            "params": dict(params or {}),
            "json": json_body,
            "form": form,
        }
        self.calls.append(call)
        if path == "/api/oauth2/token":
            if form.get("code") == "good-code":
                return resp(
                    200,
                    {
                        "access_token": "user-access",
                        "refresh_token": "user-refresh",
                        "expires_in": 2678400,
                        "scope": "identity identity[email] campaigns",
                        "token_type": "Bearer",
                    },
                )
            return resp(401, {"error": "invalid_grant"})
        if token not in self.valid_access:
            return resp(401, {"errors": [{"status": "401"}]})
        for (m, pattern), answer in self.routes.items():
            if m == method and re.fullmatch(pattern, path):
                return answer(call) if callable(answer) else answer
        return resp(404, {"errors": [{"status": "404", "detail": "not found"}]})


@pytest.fixture
def patreon():
    return FakePatreon()


@pytest.fixture
def registry(store, patreon):
    config = load_config({}, NO_DOTENV)
    oauth = OAuthClient(config, patreon)
    tokens = TokenStore(store, oauth, creator_pair=("creator-access", "creator-refresh"))
    registry = protocol.ActionRegistry()
    attach(registry, config, store, PatreonActions(PatreonApi(patreon, tokens), oauth, tokens, store))
    return registry


def dispatch(registry, action: str, data: dict, deadline_ms: int = 30_000) -> dict:
    _, frame = protocol.encode_request(action, data, deadline_ms)
    reply = protocol.decode_reply(registry.dispatch(frame))
    if reply.ok:
        return reply.payload()
    raise ActionError(
        reply.error["code"], reply.error["message"], reply.error["status"], reply.error.get("retry_after")
    )


def error_of(registry, action: str, data: dict) -> ActionError:
    with pytest.raises(ActionError) as caught:
        dispatch(registry, action, data)
    return caught.value


IDENTITY = {
    "data": {
        "type": "user",
        "id": "7",
        "attributes": {"full_name": "Ada Lovelace", "email": "ada@example.com"},
        "relationships": {"campaign": {"data": {"type": "campaign", "id": "1001"}}},
    }
}


def test_every_declared_issue4_action_is_attached(registry):
    for name in (
        "oauth.exchange",
        "oauth.refresh",
        "oauth.forget",
        "identity.get",
        "campaigns.list",
        "members.list",
        "members.get",
        "posts.list",
        "posts.get",
        "webhooks.list",
        "webhooks.create",
        "webhooks.update",
        "webhooks.delete",
    ):
        assert name in registry and name in protocol.ACTIONS
    for name in ("oauth.exchange", "oauth.refresh", "webhooks.create", "webhooks.update", "webhooks.delete"):
        assert protocol.ACTIONS[name].idempotent is False
    assert protocol.ACTIONS["members.list"].timeout_s >= 120


def test_exchange_stores_tokens_for_the_session_and_returns_no_token(registry, patreon, store):
    patreon.route("GET", "/api/oauth2/v2/identity", resp(200, IDENTITY))
    result = dispatch(
        registry,
        "oauth.exchange",
        {
            "code": "good-code",
            "redirect_uri": "http://127.0.0.1:6969/auth/patreon/callback",
            "session": SESSION_ID,
        },
    )
    assert result["user"]["id"] == "7"
    assert result["campaign_ids"] == ["1001"]
    assert result["tokens"] == {
        "expires_in": 2678400,
        "scope": "identity identity[email] campaigns",
        "token_type": "Bearer",
    }
    assert "user-access" not in str(result) and "user-refresh" not in str(result)
    with store.read() as conn:
        row = conn.execute("SELECT * FROM tokens WHERE principal = :p", {"p": session_principal(SESSION_ID)}).fetchone()
    assert (row["access_token"], row["refresh_token"], row["patreon_user_id"]) == (
        "user-access",
        "user-refresh",
        "7",
    )
    identity_call = patreon.calls[-1]
    assert identity_call["token"] == "user-access"
    assert identity_call["params"]["include"] == "campaign"  # the campaigns scope was granted


def test_exchange_with_a_used_code_is_auth_failed(registry, store):
    error = error_of(
        registry,
        "oauth.exchange",
        {
            "code": "used-code",
            "redirect_uri": "http://127.0.0.1:6969/auth/patreon/callback",
            "session": SESSION_ID,
        },
    )
    assert (error.status, error.code) == (401, "PATREON_AUTH_FAILED")
    assert token_count(store) == 0


def test_exchange_whose_identity_fails_leaves_no_tokens(registry, patreon, store):
    patreon.route("GET", "/api/oauth2/v2/identity", resp(503))
    error = error_of(
        registry,
        "oauth.exchange",
        {
            "code": "good-code",
            "redirect_uri": "http://127.0.0.1:6969/auth/patreon/callback",
            "session": SESSION_ID,
        },
    )
    assert error.code == "PATREON_UPSTREAM_ERROR"
    assert token_count(store) == 0


LOGIN = {
    "code": "good-code",
    "redirect_uri": "http://127.0.0.1:6969/auth/patreon/callback",
    "session": SESSION_ID,
}


@pytest.mark.parametrize(
    "identity",
    [
        {"data": {**IDENTITY["data"], "relationships": [{"campaign": {}}]}},
        {"data": {**IDENTITY["data"], "relationships": {"campaign": ["1001"]}}},
        {"data": {**IDENTITY["data"], "relationships": {"campaign": {"data": "1001"}}}},
        {"data": {**IDENTITY["data"], "relationships": {"campaign": {"data": {"id": 1001}}}}},
        {"data": [IDENTITY["data"]]},
        [IDENTITY],
    ],
)
def test_exchange_with_a_malformed_identity_is_502_and_leaves_no_tokens(registry, patreon, store, identity):
    patreon.route("GET", "/api/oauth2/v2/identity", resp(200, identity))
    error = error_of(registry, "oauth.exchange", LOGIN)
    assert (error.status, error.code) == (502, "PATREON_UPSTREAM_ERROR")
    assert token_count(store) == 0


def test_exchange_that_fails_in_any_way_after_saving_leaves_no_tokens(registry, patreon, store, monkeypatch):
    patreon.route("GET", "/api/oauth2/v2/identity", resp(200, IDENTITY))

    def broken(*args):
        raise RuntimeError("the store broke after the tokens were saved")

    monkeypatch.setattr(TokenStore, "set_user", broken)
    error = error_of(registry, "oauth.exchange", LOGIN)
    assert (error.status, error.code) == (500, protocol.INTERNAL_ERROR)
    assert token_count(store) == 0


def test_exchange_without_a_campaign_has_no_campaign_ids(registry, patreon):
    identity = {"data": {**IDENTITY["data"], "relationships": {"campaign": {"data": None}}}}
    patreon.route("GET", "/api/oauth2/v2/identity", resp(200, identity))
    assert dispatch(registry, "oauth.exchange", LOGIN)["campaign_ids"] == []


@pytest.mark.parametrize(
    "data, code",
    [
        ({"code": "", "redirect_uri": "http://x/cb", "session": SESSION_ID}, "MISSING_AUTH_CODE"),
        ({"code": "c", "redirect_uri": "javascript:alert(1)", "session": SESSION_ID}, "INVALID_URI"),
        ({"code": "c", "redirect_uri": "http://x/cb", "session": "short"}, "INVALID_DATA"),
    ],
)
def test_exchange_checks_its_data(registry, data, code):
    assert error_of(registry, "oauth.exchange", data).code == code


def test_reads_apply_useful_defaults_unless_the_caller_names_fields(registry, patreon):
    patreon.route("GET", "/api/oauth2/v2/campaigns", resp(200, {"data": []}))
    dispatch(registry, "campaigns.list", {"principal": "creator", "params": {}})
    assert patreon.calls[-1]["params"]["include"] == "tiers"
    assert "amount_cents" in patreon.calls[-1]["params"]["fields[tier]"]
    dispatch(registry, "campaigns.list", {"principal": "creator", "params": {"fields[campaign]": "vanity"}})
    assert patreon.calls[-1]["params"] == {"fields[campaign]": "vanity"}


def test_reads_refuse_bad_data_at_the_worker_boundary(registry):
    assert (
        error_of(registry, "members.get", {"principal": "creator", "member_id": "1"}).code
        == "INVALID_MEMBER_ID"
    )
    assert (
        error_of(registry, "members.list", {"principal": "creator", "campaign_id": "x"}).code
        == "INVALID_CAMPAIGN_ID"
    )
    assert error_of(registry, "posts.get", {"principal": "nobody", "post_id": "1"}).code == "INVALID_DATA"
    bad = {"principal": "creator", "campaign_id": "1001", "params": {"page[count]": "5000"}}
    assert error_of(registry, "members.list", bad).code == "INVALID_PAGE_COUNT"


def test_a_session_without_tokens_is_auth_required(registry):
    error = error_of(registry, "identity.get", {"principal": {"session": SESSION_ID}})
    assert (error.status, error.code) == (401, "PATREON_AUTH_REQUIRED")


def test_all_follows_every_cursor_and_merges_each_member_once(registry, patreon):
    def pages(call):
        cursor = call["params"].get("page[cursor]")
        start = 0 if cursor is None else int(cursor)
        count = int(call["params"]["page[count]"])
        nxt = str(start + count) if start + count < 2500 else None
        return resp(200, members_page(start, count, 2500, nxt))

    patreon.route("GET", "/api/oauth2/v2/campaigns/1001/members", pages)
    result = dispatch(registry, "members.list", {"principal": "creator", "campaign_id": "1001", "all": True})
    ids = [m["id"] for m in result["data"]]
    assert len(ids) == len(set(ids)) == 2500
    assert result["included"] == [{"type": "tier", "id": "t1", "attributes": {}}]
    assert result["meta"]["pagination"]["total"] == 2500
    assert result["meta"]["pages"] == 3
    assert [c["params"]["page[count]"] for c in patreon.calls] == ["1000"] * 3


def test_all_stops_on_a_repeating_cursor(registry, patreon):
    patreon.route(
        "GET",
        "/api/oauth2/v2/campaigns/1001/members",
        lambda call: resp(200, members_page(0 if "page[cursor]" not in call["params"] else 2, 2, 10, "LOOP")),
    )
    result = dispatch(registry, "members.list", {"principal": "creator", "campaign_id": "1001", "all": True})
    assert result["meta"]["stopped"] == "a cursor repeated"
    assert len(patreon.calls) == 2
    assert len(result["data"]) == 4


def test_all_stops_on_a_repeating_page(registry, patreon):
    patreon.route(
        "GET",
        "/api/oauth2/v2/campaigns/1001/members",
        lambda call: resp(200, members_page(0, 2, 10, f"c{len(patreon.calls)}")),
    )
    result = dispatch(registry, "members.list", {"principal": "creator", "campaign_id": "1001", "all": True})
    assert result["meta"]["stopped"] == "a page repeated an earlier page"
    assert len(result["data"]) == 2


@pytest.mark.parametrize(
    "answer, status, code, text",
    [
        (
            resp(
                403,
                {
                    "errors": [
                        {
                            "detail": "This request requires the 'campaigns.members' scope, which this token lacks."
                        }
                    ]
                },
            ),
            403,
            "PATREON_FORBIDDEN",
            "'campaigns.members'",
        ),
        (resp(404, {"errors": [{"detail": "nope"}]}), 404, "NOT_FOUND", ""),
        (
            resp(400, {"errors": [{"detail": "fields[member]: 'x' is not a valid field"}]}),
            400,
            "PATREON_BAD_REQUEST",
            "'x'",
        ),
        (resp(500), 502, "PATREON_UPSTREAM_ERROR", ""),
    ],
)
def test_patreon_errors_map_to_stable_codes(registry, patreon, answer, status, code, text):
    patreon.route("GET", "/api/oauth2/v2/campaigns/1001/members", answer)
    error = error_of(registry, "members.list", {"principal": "creator", "campaign_id": "1001"})
    assert (error.status, error.code) == (status, code)
    assert text in error.message


def test_webhook_create_keeps_the_secret_and_list_never_shows_it(registry, patreon, store):
    created = {
        "data": {
            "type": "webhook",
            "id": "77",
            "attributes": {
                "uri": "https://site.example/api/patreon/webhooks/patreon",
                "triggers": ["members:create"],
                "secret": "whsec-77",
                "paused": False,
                "num_consecutive_times_failed": 0,
                "last_attempted_at": None,
            },
            "relationships": {"campaign": {"data": {"type": "campaign", "id": "1001"}}},
        }
    }
    patreon.route("POST", "/api/oauth2/v2/webhooks", resp(201, created))
    patreon.route(
        "GET", "/api/oauth2/v2/webhooks", resp(200, {"data": [], "meta": {"pagination": {"total": 0}}})
    )
    patreon.route(
        "GET", "/api/oauth2/v2/campaigns", resp(200, {"data": [{"type": "campaign", "id": "1001"}]})
    )
    hook = dispatch(
        registry,
        "webhooks.create",
        {"uri": "https://site.example/api/patreon/webhooks/patreon", "triggers": ["members:create"]},
    )["webhook"]
    assert hook["secret"] == "whsec-77" and hook["secret_stored"] is True and hook["campaign_id"] == "1001"
    sent = patreon.calls[-1]
    assert sent["token"] == "creator-access"
    assert sent["json"]["data"]["relationships"]["campaign"]["data"] == {"type": "campaign", "id": "1001"}
    assert webhook_secrets.all_secrets(store) == ["whsec-77"]

    listed = dict(created["data"])
    patreon.route(
        "GET", "/api/oauth2/v2/webhooks", resp(200, {"data": [listed], "meta": {"pagination": {"total": 1}}})
    )
    hooks = dispatch(registry, "webhooks.list", {})["webhooks"]
    assert hooks[0]["paused"] is False and hooks[0]["num_consecutive_times_failed"] == 0
    assert "secret" not in hooks[0] and hooks[0]["secret_stored"] is True
    assert "secret" not in patreon.calls[-1]["params"]["fields[webhook]"]


def test_webhook_unpause_sends_paused_false(registry, patreon):
    def patch(call):
        return resp(
            200,
            {
                "data": {
                    "type": "webhook",
                    "id": "77",
                    "attributes": {"paused": "false", "num_consecutive_times_failed": 3},
                }
            },
        )

    patreon.route("PATCH", "/api/oauth2/v2/webhooks/77", patch)
    hook = dispatch(registry, "webhooks.update", {"webhook_id": "77", "paused": "false"})["webhook"]
    assert patreon.calls[-1]["json"] == {
        "data": {"type": "webhook", "id": "77", "attributes": {"paused": False}}
    }
    assert hook["paused"] is False


def test_webhook_delete_drops_the_secret_even_when_patreon_has_forgotten_it(registry, patreon, store):
    webhook_secrets.save(store, "77", "whsec-77")
    webhook_secrets.save(store, "78", "whsec-78")
    patreon.route("DELETE", "/api/oauth2/v2/webhooks/77", resp(204))
    assert dispatch(registry, "webhooks.delete", {"webhook_id": "77"}) == {"deleted": "77"}
    assert error_of(registry, "webhooks.delete", {"webhook_id": "78"}).code == "NOT_FOUND"
    assert webhook_secrets.all_secrets(store) == []


def test_webhook_writes_check_triggers_and_uri(registry):
    assert (
        error_of(registry, "webhooks.create", {"uri": "https://x.example/h", "triggers": ["nope"]}).code
        == "INVALID_TRIGGERS"
    )
    assert (
        error_of(registry, "webhooks.create", {"uri": "ftp://x", "triggers": ["members:create"]}).code
        == "INVALID_URI"
    )
    assert error_of(registry, "webhooks.update", {"webhook_id": "77"}).code == "NOTHING_TO_UPDATE"
    assert (
        error_of(registry, "webhooks.update", {"webhook_id": "x", "paused": False}).code
        == "INVALID_WEBHOOK_ID"
    )


def test_forget_drops_the_session_tokens(registry, patreon, store):
    patreon.route("GET", "/api/oauth2/v2/identity", resp(200, IDENTITY))
    dispatch(
        registry,
        "oauth.exchange",
        {
            "code": "good-code",
            "redirect_uri": "http://127.0.0.1:6969/auth/patreon/callback",
            "session": SESSION_ID,
        },
    )
    assert dispatch(registry, "oauth.forget", {"session": SESSION_ID}) == {"forgotten": True}
    assert (
        error_of(registry, "identity.get", {"principal": {"session": SESSION_ID}}).code
        == "PATREON_AUTH_REQUIRED"
    )


def test_creator_principal_uses_the_creator_token(registry, patreon):
    patreon.route("GET", "/api/oauth2/v2/posts/5", resp(200, {"data": {"type": "post", "id": "5"}}))
    dispatch(registry, "posts.get", {"principal": CREATOR, "post_id": "5"})
    assert patreon.calls[-1]["token"] == "creator-access"
    assert "title" in patreon.calls[-1]["params"]["fields[post]"]


# -- webhook create across a timeout (issue 16, finding 3) ------------------------------------
HOOK_URI = "https://site.example/api/patreon/webhooks/patreon"


class PatreonWebhooks:
    """Patreon's webhook list, where a create is stored before its answer is lost."""

    def __init__(self, patreon, *, answer_lost: bool, listing_shows_secret: bool = True):
        self.hooks: list[dict] = []
        self.listing_shows_secret = listing_shows_secret
        self.deleted: list[str] = []

        def create(call):
            attributes = dict(
                call["json"]["data"]["attributes"], secret=f"whsec-{len(self.hooks) + 1}", paused=False
            )
            hook = {
                "type": "webhook",
                "id": str(70 + len(self.hooks) + 1),
                "attributes": attributes,
                "relationships": {"campaign": {"data": {"type": "campaign", "id": "1001"}}},
            }
            self.hooks.append(hook)
            if answer_lost:
                raise upstream_error("Patreon did not answer in time")
            return resp(201, {"data": hook})

        def listing(call):
            shown = []
            for hook in self.hooks:
                attributes = dict(hook["attributes"])
                if not self.listing_shows_secret or "secret" not in call["params"].get("fields[webhook]", ""):
                    attributes.pop("secret")
                shown.append({**hook, "attributes": attributes})
            return resp(200, {"data": shown, "meta": {"pagination": {"total": len(shown)}}})

        def delete(call):
            hook_id = call["path"].rsplit("/", 1)[1]
            self.deleted.append(hook_id)
            self.hooks = [h for h in self.hooks if h["id"] != hook_id]
            return resp(204, None)

        patreon.route("POST", "/api/oauth2/v2/webhooks", create)
        patreon.route("GET", "/api/oauth2/v2/webhooks", listing)
        patreon.route("DELETE", r"/api/oauth2/v2/webhooks/\d+", delete)


def create_hook(registry, triggers=("members:create", "members:delete")) -> dict:
    return dispatch(
        registry, "webhooks.create", {"uri": HOOK_URI, "triggers": list(triggers), "campaign_id": "1001"}
    )["webhook"]


def posts(patreon) -> int:
    return sum(1 for c in patreon.calls if c["method"] == "POST" and c["path"].endswith("/webhooks"))


def test_a_create_whose_answer_is_lost_recovers_the_webhook_and_its_secret(registry, patreon, store):
    world = PatreonWebhooks(patreon, answer_lost=True)
    hook = create_hook(registry)
    assert (hook["id"], hook["recovered"], hook["secret_stored"]) == ("71", True, True)
    assert webhook_secrets.all_secrets(store) == ["whsec-1"]
    assert len(world.hooks) == 1 and posts(patreon) == 1


def test_a_retried_create_adopts_the_webhook_instead_of_making_a_second(registry, patreon, store):
    world = PatreonWebhooks(patreon, answer_lost=False)
    first = create_hook(registry)
    again = create_hook(registry, triggers=("members:delete", "members:create"))  # any order
    assert first["id"] == again["id"] == "71" and again["recovered"] is True
    assert len(world.hooks) == 1 and posts(patreon) == 1
    assert webhook_secrets.all_secrets(store) == ["whsec-1"]
    create_hook(registry, triggers=("members:update",))  # other triggers: another webhook
    assert len(world.hooks) == 2


def test_a_lost_webhook_whose_secret_cannot_be_read_is_removed(registry, patreon, store):
    world = PatreonWebhooks(patreon, answer_lost=True, listing_shows_secret=False)
    with pytest.raises(ActionError) as caught:
        create_hook(registry)
    assert caught.value.code == "PATREON_UPSTREAM_ERROR" and "removed" in caught.value.message
    assert world.hooks == [] and world.deleted == ["71"]
    assert webhook_secrets.all_secrets(store) == []


def test_a_create_that_failed_before_patreon_stored_it_is_an_upstream_error(registry, patreon):
    patreon.route(
        "GET", "/api/oauth2/v2/webhooks", resp(200, {"data": [], "meta": {"pagination": {"total": 0}}})
    )
    patreon.route(
        "POST", "/api/oauth2/v2/webhooks", lambda call: (_ for _ in ()).throw(upstream_error("lost"))
    )
    with pytest.raises(ActionError) as caught:
        create_hook(registry)
    assert caught.value.code == "PATREON_UPSTREAM_ERROR"


def token_count(store) -> int:
    with store.read() as conn:
        return conn.execute("SELECT COUNT(*) AS n FROM tokens").fetchone()["n"]
