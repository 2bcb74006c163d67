"""OAuth2, per PATREON.md: the authorize page and its errors, the token endpoint with
both grants and every error body, single-use expiring codes, rotating refresh tokens."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "http://127.0.0.1:6969/auth/patreon/callback"


@pytest.fixture(autouse=True)
def _same_configuration_as_conftest(oauth):
    assert (oauth.client_id, oauth.client_secret, oauth.redirect_uri) == (
        CLIENT_ID,
        CLIENT_SECRET,
        REDIRECT_URI,
    )


def authorize_url(**overrides: str) -> str:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "identity identity[email] campaigns",
        "state": "csrf-123",
    } | overrides
    return urlencode({k: v for k, v in params.items() if v is not None})


def redirect_query(result) -> dict[str, list[str]]:
    assert result.status_code == 302, result.text
    location = result.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return parse_qs(urlsplit(location).query)


# ------------------------------------------------------------------ authorize


def test_authorize_shows_a_consent_page_with_allow_and_deny(client):
    result = client.simulate_get("/oauth2/authorize", query_string=authorize_url())
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/html")
    page = result.text
    assert '<form method="post" action="/oauth2/authorize">' in page
    assert 'name="decision" value="allow"' in page and 'name="decision" value="deny"' in page
    assert '<select name="user_id">' in page and '<option value="1" selected>' in page
    assert 'name="state" value="csrf-123"' in page
    assert "identity[email]" in page and "campaigns" in page


def test_allow_redirects_with_code_and_state(oauth, client):
    body = parse_qs(authorize_url()) | {"user_id": ["1"], "decision": ["allow"]}
    result = client.simulate_post(
        "/oauth2/authorize",
        body=urlencode(body, doseq=True),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    query = redirect_query(result)
    assert query["state"] == ["csrf-123"] and len(query["code"][0]) > 20


def test_deny_redirects_with_access_denied(client):
    body = parse_qs(authorize_url()) | {"decision": ["deny"]}
    result = client.simulate_post(
        "/oauth2/authorize",
        body=urlencode(body, doseq=True),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert redirect_query(result) == {"error": ["access_denied"], "state": ["csrf-123"]}


def test_unknown_client_shows_an_error_page_and_never_redirects(client):
    result = client.simulate_get("/oauth2/authorize", query_string=authorize_url(client_id="x"))
    assert result.status_code == 400
    assert "Location" not in result.headers
    assert result.headers["Content-Type"].startswith("text/html")


def test_redirect_uri_must_match_exactly(client):
    for uri in (REDIRECT_URI + "/", REDIRECT_URI + "?x=1", "http://evil.example/cb", None):
        result = client.simulate_get("/oauth2/authorize", query_string=authorize_url(redirect_uri=uri))
        assert result.status_code == 400, uri
        assert "Location" not in result.headers


def test_unknown_scope_redirects_with_invalid_scope_and_state(client):
    result = client.simulate_get(
        "/oauth2/authorize", query_string=authorize_url(scope="identity campaigns.everything")
    )
    assert redirect_query(result) == {"error": ["invalid_scope"], "state": ["csrf-123"]}


def test_comma_separated_scopes_are_ignored_leaving_identity_only(oauth):
    code = oauth.authorize(scope="identity,campaigns,campaigns.members")
    token = oauth.exchange(code)
    assert token["scope"] == "identity"
    assert oauth.get("/campaigns", token=token["access_token"]).status_code == 403


def test_a_scopes_parameter_is_ignored_leaving_identity_only(client):
    result = client.simulate_get(
        "/oauth2/authorize", query_string=authorize_url(scope=None, scopes="campaigns")
    )
    assert result.status_code == 200
    assert "<code>identity</code>" in result.text and "<code>campaigns</code>" not in result.text


# ------------------------------------------------------------------ token: happy path


def test_code_grant_returns_patreons_token_shape(oauth):
    token = oauth.login(scope="identity identity[email] campaigns", user_id="1")
    assert set(token) == {
        "access_token",
        "refresh_token",
        "expires_in",
        "scope",
        "token_type",
        "version",
    }
    assert token["expires_in"] == 2678400
    assert token["scope"] == "identity identity[email] campaigns"
    assert token["token_type"] == "Bearer"
    identity = oauth.get("/identity", token=token["access_token"], query="fields%5Buser%5D=email")
    assert identity.status_code == 200
    assert identity.json["data"]["id"] == "1"
    assert identity.json["data"]["attributes"] == {"email": "creator@example.com"}


def test_the_consent_page_user_becomes_the_token_user(oauth, sandbox):
    patron_user = next(iter(sandbox.world.members.values())).user_id
    token = oauth.login(scope="identity", user_id=patron_user)
    assert oauth.get("/identity", token=token["access_token"]).json["data"]["id"] == patron_user


def test_token_fields_may_come_from_the_query_string(oauth, client):
    code = oauth.authorize()
    query = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
        }
    )
    result = client.simulate_post("/api/oauth2/token", query_string=query)
    assert result.status_code == 200
    assert result.json["access_token"]


def test_codes_are_single_use(oauth):
    code = oauth.authorize()
    oauth.exchange(code)
    again = oauth.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI)
    assert (again.status_code, again.json) == (401, {"error": "invalid_grant"})


def test_codes_expire(oauth, clock):
    code = oauth.authorize()
    clock.advance(601)
    late = oauth.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI)
    assert (late.status_code, late.json) == (401, {"error": "invalid_grant"})


def test_code_needs_the_redirect_uri_it_was_issued_for(oauth):
    code = oauth.authorize()
    other = oauth.token(grant_type="authorization_code", code=code, redirect_uri="http://other.example/cb")
    assert (other.status_code, other.json) == (401, {"error": "invalid_grant"})


# ------------------------------------------------------------------ token: errors


def test_unknown_code_is_invalid_grant(oauth):
    result = oauth.token(grant_type="authorization_code", code="nope", redirect_uri=REDIRECT_URI)
    assert (result.status_code, result.json) == (401, {"error": "invalid_grant"})


def test_wrong_client_secret_is_invalid_client(oauth, client):
    code = oauth.authorize()
    result = client.simulate_post(
        "/api/oauth2/token",
        body=urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": CLIENT_ID,
                "client_secret": "wrong",
                "redirect_uri": REDIRECT_URI,
            }
        ),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (result.status_code, result.json) == (401, {"error": "invalid_client"})


def test_wrong_client_id_is_invalid_client(oauth):
    result = oauth.token(
        grant_type="refresh_token", refresh_token=oauth.creator_refresh, client_id="someone-else"
    )
    assert (result.status_code, result.json) == (401, {"error": "invalid_client"})


def test_missing_fields_are_invalid_request_with_a_description(oauth):
    result = oauth.token(grant_type="authorization_code", redirect_uri=REDIRECT_URI)
    assert result.status_code == 400
    assert result.json["error"] == "invalid_request"
    assert "code" in result.json["error_description"]
    no_grant = oauth.token()
    assert no_grant.status_code == 400 and no_grant.json["error"] == "invalid_request"


def test_unknown_grant_type_is_refused(oauth):
    result = oauth.token(grant_type="password")
    assert result.status_code == 400
    assert result.json["error"] == "unsupported_grant_type"


def test_a_json_body_is_not_a_form(oauth, client):
    result = client.simulate_post(
        "/api/oauth2/token",
        json={"grant_type": "refresh_token", "refresh_token": oauth.creator_refresh},
    )
    assert result.status_code == 400 and result.json["error"] == "invalid_request"


# ------------------------------------------------------------------ refresh rotation


def test_refresh_rotates_and_the_old_refresh_token_is_rejected(oauth):
    first = oauth.login()
    second = oauth.refresh(first["refresh_token"])
    assert second.status_code == 200
    pair = second.json
    assert pair["access_token"] != first["access_token"]
    assert pair["refresh_token"] != first["refresh_token"]
    assert pair["scope"] == first["scope"] and pair["expires_in"] == 2678400
    reused = oauth.refresh(first["refresh_token"])
    assert (reused.status_code, reused.json) == (401, {"error": "invalid_grant"})
    assert oauth.get("/identity", token=pair["access_token"]).status_code == 200
    # Documented choice: the previous access token lives until it expires.
    assert oauth.get("/identity", token=first["access_token"]).status_code == 200
    third = oauth.refresh(pair["refresh_token"])
    assert third.status_code == 200


def test_the_pre_issued_creator_pair_works_and_rotates(oauth):
    assert oauth.get("/identity", token=oauth.creator_token).json["data"]["id"] == "1"
    rotated = oauth.refresh(oauth.creator_refresh)
    assert rotated.status_code == 200
    assert set(rotated.json["scope"].split()) >= {"campaigns.members", "w:campaigns.webhook"}
    assert oauth.refresh(oauth.creator_refresh).json == {"error": "invalid_grant"}


def test_tokens_expire_and_the_refresh_token_still_works(oauth, clock):
    token = oauth.login()
    clock.advance(2678400)
    expired = oauth.get("/identity", token=token["access_token"])
    assert expired.status_code == 401
    assert expired.json["errors"][0]["code_name"] == "Unauthorized"
    fresh = oauth.refresh(token["refresh_token"])
    assert fresh.status_code == 200
    assert oauth.get("/identity", token=fresh.json["access_token"]).status_code == 200


def test_grants_are_counted(oauth, client):
    oauth.refresh(oauth.login()["refresh_token"])
    state = client.simulate_get("/_sandbox/state").json
    assert state["token_grants"] == {"authorization_code": 1, "refresh_token": 1}
    assert state["tokens_issued"] == 2
    assert oauth.creator_token not in str(state)
