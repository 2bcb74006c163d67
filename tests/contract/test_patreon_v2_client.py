"""A Python client for Patreon's API v2 that is not ours, unmodified, against a real
sandbox process: `patreon-v2` 0.5.1 from PyPI (module `patreon`; a fork of
Patreon/patreon-python whose api.py is "auto-generated from the same code that
generates docs.patreon.com"). The official `patreon` 0.5.0 on PyPI speaks only API v1
(`/oauth2/api/current_user`), so it cannot be the client here.

Only its base URL is changed. patreon-v2 has no setting for it: `API` and `OAuth`
build `https://www.patreon.com/api/...` inside their private methods and send it with
the module attribute `requests` of `patreon.api` and `patreon.oauth`. The test swaps
that attribute for `BaseUrl`, which rewrites the scheme and host
`https://www.patreon.com` to the sandbox's and hands everything else (method, path,
query, headers, body) to the real `requests` untouched.

It runs, with the client's own calls: OAuth code exchange (`OAuth.get_tokens`) and
refresh (`OAuth.refresh_token`), identity with fields and includes
(`API.get_identity`), campaigns (`API.get_campaigns`), members with the client's own
paging loop to the end (`API.get_campaigns_by_id_members` + `API.extract_cursor`),
and single-webhook reads (`API.get_webhooks_by_id`).
"""

from __future__ import annotations

import importlib.metadata
import warnings

import pytest
import requests as real_requests

from tests.contract.sandbox_process import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, UA, SandboxProcess

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # patreon.utils imports pkg_resources
    import patreon
    import patreon.api
    import patreon.oauth

CLIENT = "patreon-v2"
CLIENT_VERSION = "0.5.1"
PATREON = "https://www.patreon.com"
SCOPES = "identity identity[email] identity.memberships campaigns w:campaigns.webhook campaigns.members campaigns.members[email]"


class BaseUrl:
    """Stands in for the `requests` module inside patreon-v2: Patreon's host -> ours."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.urls: list[str] = []

    def _url(self, url: str) -> str:
        assert url.startswith(PATREON + "/"), url
        rewritten = self.base_url + url[len(PATREON) :]
        self.urls.append(rewritten)
        return rewritten

    def get(self, url, **kwargs):
        return real_requests.get(self._url(url), **kwargs)

    def post(self, url, **kwargs):
        return real_requests.post(self._url(url), **kwargs)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    process = SandboxProcess(tmp_path_factory.mktemp("patreon-v2-client"), {"SANDBOX_MEMBERS": "45"})
    process.start()
    yield process
    process.stop()


@pytest.fixture
def base_url(sandbox, monkeypatch):
    shim = BaseUrl(sandbox.url)
    monkeypatch.setattr(patreon.api, "requests", shim)
    monkeypatch.setattr(patreon.oauth, "requests", shim)
    return shim


def test_the_client_is_patreon_v2_0_5_1():
    assert importlib.metadata.version(CLIENT) == CLIENT_VERSION
    assert patreon.API is patreon.api.API and patreon.OAuth is patreon.oauth.OAuth


def test_patreon_v2_0_5_1_oauth_identity_campaigns_members_and_a_webhook(sandbox, base_url):
    # OAuth code exchange: the browser's consent (the sandbox's form), then the client.
    code = sandbox.authorize(SCOPES, user_id="1")
    oauth = patreon.OAuth(CLIENT_ID, CLIENT_SECRET)
    tokens = oauth.get_tokens(code, REDIRECT_URI)
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == SCOPES, tokens
    # Refresh: a new pair; the old refresh token is used up.
    refreshed = oauth.refresh_token(tokens["refresh_token"])
    assert refreshed["access_token"] != tokens["access_token"]
    assert oauth.refresh_token(tokens["refresh_token"]) == {"error": "invalid_grant"}
    api = patreon.API(refreshed["access_token"])

    # Identity with fields and includes.
    me = api.get_identity(
        includes=["memberships", "campaign"],
        fields={"user": ["full_name", "email"], "campaign": ["creation_name", "currency"], "member": []},
    )
    user = me.data()
    assert user.id() == "1" and user.attribute("full_name") == "Sam Sandbox"
    assert user.attribute("email") == "creator@example.com"
    campaign = user.relationship("campaign")
    assert campaign.id() == "1001" and campaign.attribute("currency") == "USD"
    assert user.relationship("memberships") == []

    # Campaigns.
    campaigns = api.get_campaigns(10, fields={"campaign": ["patron_count", "url"]})
    assert [c.id() for c in campaigns.data()] == ["1001"]
    assert campaigns.data()[0].attribute("patron_count") > 0

    # Members, with the client's own paging loop, to the end.
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        page = api.get_campaigns_by_id_members(
            "1001",
            8,
            cursor=cursor,
            includes=["currently_entitled_tiers", "user"],
            fields={
                "member": ["full_name", "patron_status", "lifetime_support_cents"],
                "tier": ["title"],
                "user": ["full_name"],
            },
        )
        assert not isinstance(page, dict), page  # a dict is the client's error answer
        pages += 1
        for member in page.data():
            seen.append(member.id())
            assert member.attribute("lifetime_support_cents") is not None
            assert member.relationship("user").attribute("full_name")
        cursor = api.extract_cursor(page)
        if not cursor:
            break
    total = page.json_data["meta"]["pagination"]["total"]
    assert total == sandbox.control("GET", "/state")["members"] == 45
    assert len(seen) == len(set(seen)) == total and pages == 6

    # A single webhook (created with a plain request: the client cannot create one).
    created = real_requests.post(
        f"{sandbox.url}/api/oauth2/v2/webhooks",
        json={
            "data": {
                "type": "webhook",
                "attributes": {"triggers": ["members:create"], "uri": "http://127.0.0.1:9/hook"},
                "relationships": {"campaign": {"data": {"type": "campaign", "id": "1001"}}},
            }
        },
        headers=UA | {"Authorization": f"Bearer {refreshed['access_token']}"},
        timeout=5,
    )
    assert created.status_code == 201, created.text
    hook_id = created.json()["data"]["id"]
    hook = api.get_webhooks_by_id(hook_id, fields={"webhook": ["uri", "paused", "triggers"]}).data()
    assert hook.id() == hook_id and hook.attribute("triggers") == ["members:create"]
    assert hook.attribute("paused") is False
    listed = api.get_webhooks(10, fields={"webhook": ["uri"]})
    assert hook_id in [h.id() for h in listed.data()]

    # Every call went to the sandbox, none to patreon.com.
    assert base_url.urls and all(url.startswith(sandbox.url + "/api/") for url in base_url.urls)
