"""API v2 resources, per PATREON.md: sparse fieldsets, includes, scopes, error bodies."""

from __future__ import annotations

import pytest

ERROR_KEYS = {"id", "code", "code_name", "detail", "status", "title"}


def error_of(result, status: int, code_name: str) -> dict:
    assert result.status_code == status, result.text
    errors = result.json["errors"]
    assert len(errors) == 1 and ERROR_KEYS <= set(errors[0])
    assert errors[0]["status"] == str(status)
    assert errors[0]["code_name"] == code_name
    return errors[0]


@pytest.fixture
def member_id(sandbox) -> str:
    return next(iter(sandbox.world.members))


# ------------------------------------------------------------------ gate


def test_no_user_agent_is_403(oauth):
    # falcon's test client sends its own User-Agent unless told otherwise; the live
    # test checks a request with no User-Agent header at all.
    result = oauth.get("/identity", headers={"User-Agent": ""})
    error_of(result, 403, "Forbidden")


def test_no_unknown_or_malformed_token_is_401(oauth, client):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        result = client.simulate_get("/api/oauth2/v2/identity", headers=headers)
        error = error_of(result, 401, "Unauthorized")
        assert error["code"] == 1


def test_unknown_route_is_a_json_api_404(oauth):
    error_of(oauth.get("/nothing-here"), 404, "NotFound")


# ------------------------------------------------------------------ sparse fieldsets


def test_without_fields_only_type_and_id_come_back(oauth):
    data = oauth.get("/identity").json["data"]
    assert data == {"attributes": {}, "id": "1", "type": "user"}


def test_only_the_fields_asked_for_come_back(oauth):
    data = oauth.get("/identity", query="fields%5Buser%5D=full_name,vanity").json["data"]
    assert data["attributes"] == {"full_name": "Sam Sandbox", "vanity": "sandbox-creator"}
    assert "relationships" not in data


def test_brackets_work_encoded_or_not(oauth):
    raw = oauth.get("/identity", query="fields[user]=full_name").json["data"]
    encoded = oauth.get("/identity", query="fields%5Buser%5D=full_name").json["data"]
    assert raw == encoded and raw["attributes"] == {"full_name": "Sam Sandbox"}


def test_unknown_field_or_type_is_parameter_invalid(oauth):
    error = error_of(oauth.get("/identity", query="fields%5Buser%5D=shoe_size"), 400, "ParameterInvalid")
    assert "shoe_size" in error["detail"]
    error_of(oauth.get("/identity", query="fields%5Bplanet%5D=name"), 400, "ParameterInvalid")


def test_member_fields_are_exactly_those_asked_for(oauth, member_id):
    fields = "patron_status,last_charge_status,currently_entitled_amount_cents,email"
    data = oauth.get(f"/members/{member_id}", query=f"fields%5Bmember%5D={fields}").json["data"]
    assert set(data["attributes"]) == set(fields.split(","))
    assert "relationships" not in data


def test_every_documented_member_attribute_exists(oauth, member_id):
    names = (
        "patron_status,last_charge_status,currently_entitled_amount_cents,will_pay_amount_cents,"
        "campaign_lifetime_support_cents,pledge_cadence,next_charge_date,last_charge_date,"
        "pledge_relationship_start,is_free_trial,is_gifted,email,full_name,note"
    )
    data = oauth.get(f"/members/{member_id}", query=f"fields[member]={names}").json["data"]
    assert set(data["attributes"]) == set(names.split(","))


# ------------------------------------------------------------------ includes


def test_includes_return_relationships_and_exactly_the_included_resources(oauth, member_id):
    result = oauth.get(
        f"/members/{member_id}",
        query="include=currently_entitled_tiers,user&fields%5Btier%5D=title,amount_cents",
    )
    doc = result.json
    relationships = doc["data"]["relationships"]
    assert set(relationships) == {"currently_entitled_tiers", "user"}
    tier_refs = relationships["currently_entitled_tiers"]["data"]
    user_ref = relationships["user"]["data"]
    included = {(r["type"], r["id"]): r for r in doc["included"]}
    assert set(included) == {(t["type"], t["id"]) for t in tier_refs} | {("user", user_ref["id"])}
    for ref in tier_refs:
        assert set(included[("tier", ref["id"])]["attributes"]) == {"title", "amount_cents"}
    assert included[("user", user_ref["id"])]["attributes"] == {}


def test_included_resources_are_deduplicated(oauth):
    doc = oauth.get(
        "/campaigns/1001/members", query="include=campaign,currently_entitled_tiers&page[count]=50"
    ).json
    keys = [(r["type"], r["id"]) for r in doc["included"]]
    assert len(keys) == len(set(keys))
    assert keys.count(("campaign", "1001")) == 1


def test_nested_includes_walk_the_relationships(oauth):
    doc = oauth.get("/campaigns/1001", query="include=tiers.benefits&fields[benefit]=title").json
    types = {r["type"] for r in doc["included"]}
    assert types == {"tier", "benefit"}
    tier = next(r for r in doc["included"] if r["type"] == "tier")
    assert tier["relationships"]["benefits"]["data"]


def test_unknown_include_is_parameter_invalid(oauth):
    error = error_of(oauth.get("/campaigns/1001", query="include=rewards"), 400, "ParameterInvalid")
    assert "rewards" in error["detail"]


def test_identity_includes_campaign_and_memberships(oauth, sandbox):
    doc = oauth.get("/identity", query="include=campaign,memberships").json
    assert doc["data"]["relationships"]["campaign"]["data"] == {"id": "1001", "type": "campaign"}
    assert doc["data"]["relationships"]["memberships"]["data"] == []  # the creator is no patron
    member = next(iter(sandbox.world.members.values()))
    patron = oauth.login(scope="identity", user_id=member.user_id)
    doc = oauth.get(
        "/identity",
        token=patron["access_token"],
        query="include=memberships&fields[member]=patron_status",
    ).json
    assert doc["data"]["relationships"]["memberships"]["data"] == [{"id": member.id, "type": "member"}]
    assert doc["included"][0]["attributes"] == {"patron_status": member.patron_status}


# ------------------------------------------------------------------ scopes


def test_email_needs_identity_email(oauth):
    token = oauth.login(scope="identity")["access_token"]
    data = oauth.get("/identity", token=token, query="fields[user]=email,full_name").json["data"]
    assert data["attributes"] == {"full_name": "Sam Sandbox"}


def test_identity_campaign_include_needs_campaigns(oauth):
    token = oauth.login(scope="identity")["access_token"]
    error = error_of(oauth.get("/identity", token=token, query="include=campaign"), 403, "Forbidden")
    assert "campaigns" in error["detail"]


def test_missing_scope_is_403_naming_it(oauth):
    token = oauth.login(scope="identity campaigns")["access_token"]
    error = error_of(oauth.get("/campaigns/1001/members", token=token), 403, "Forbidden")
    assert "campaigns.members" in error["detail"]
    error = error_of(oauth.get("/campaigns/1001/posts", token=token), 403, "Forbidden")
    assert "campaigns.posts" in error["detail"]
    error = error_of(oauth.get("/webhooks", token=token), 403, "Forbidden")
    assert "w:campaigns.webhook" in error["detail"]


def test_member_email_needs_its_scope_and_address_its_own(oauth, member_id):
    token = oauth.login(scope="identity campaigns.members")["access_token"]
    data = oauth.get(f"/members/{member_id}", token=token, query="fields[member]=email,full_name").json[
        "data"
    ]
    assert set(data["attributes"]) == {"full_name"}
    error = error_of(
        oauth.get(f"/members/{member_id}", token=token, query="include=address"), 403, "Forbidden"
    )
    assert "campaigns.members.address" in error["detail"]
    full = oauth.get(f"/members/{member_id}", query="fields[member]=email&include=address").json
    assert "@example.com" in full["data"]["attributes"]["email"]


def test_a_patron_sees_no_campaign_and_no_members(oauth, sandbox):
    user_id = next(iter(sandbox.world.members.values())).user_id
    token = oauth.login(user_id=user_id)["access_token"]
    campaigns = oauth.get("/campaigns", token=token).json
    assert campaigns["data"] == [] and campaigns["meta"]["pagination"]["total"] == 0
    error_of(oauth.get("/campaigns/1001", token=token), 403, "Forbidden")
    error_of(oauth.get("/campaigns/1001/members", token=token), 403, "Forbidden")


# ------------------------------------------------------------------ resources


def test_campaigns_list_and_campaign(oauth):
    listed = oauth.get("/campaigns", query="fields[campaign]=creation_name,patron_count").json
    assert [c["id"] for c in listed["data"]] == ["1001"]
    assert listed["meta"]["pagination"]["total"] == 1
    attributes = listed["data"][0]["attributes"]
    assert set(attributes) == {"creation_name", "patron_count"} and attributes["patron_count"] > 0
    one = oauth.get(
        "/campaigns/1001",
        query="include=tiers,creator,benefits,goals&fields[campaign]=url,vanity,is_monthly",
    ).json
    assert one["data"]["attributes"]["is_monthly"] is True
    assert set(one["data"]["relationships"]) == {"tiers", "creator", "benefits", "goals"}


def test_unknown_ids_are_404(oauth):
    error_of(oauth.get("/campaigns/999"), 404, "NotFound")
    error_of(oauth.get("/members/00000000-0000-4000-8000-000000000000"), 404, "NotFound")
    error_of(oauth.get("/posts/1"), 404, "NotFound")


def test_posts_list_and_post(oauth):
    listed = oauth.get("/campaigns/1001/posts", query="fields[post]=title,published_at").json
    assert listed["meta"]["pagination"]["total"] == 20
    assert len(listed["data"]) == 20
    post_id = listed["data"][0]["id"]
    one = oauth.get(f"/posts/{post_id}", query="fields[post]=title,url,is_paid,embed_data").json
    assert set(one["data"]["attributes"]) == {"title", "url", "is_paid", "embed_data"}


# ------------------------------------------------------------------ webhooks API


def create_webhook(oauth, triggers=("members:create",), uri="https://example.com/hook"):
    return oauth.send(
        "POST",
        "/webhooks",
        {
            "data": {
                "type": "webhook",
                "attributes": {"triggers": list(triggers), "uri": uri},
                "relationships": {"campaign": {"data": {"type": "campaign", "id": "1001"}}},
            }
        },
    )


def test_webhook_create_list_patch_delete(oauth):
    created = create_webhook(oauth)
    assert created.status_code == 201
    hook = created.json["data"]
    attributes = hook["attributes"]
    assert set(attributes) == {
        "triggers",
        "uri",
        "paused",
        "last_attempted_at",
        "num_consecutive_times_failed",
        "secret",
    }
    assert attributes["paused"] is False and attributes["num_consecutive_times_failed"] == 0
    assert len(attributes["secret"]) >= 32
    listed = oauth.get("/webhooks", query="fields[webhook]=uri,secret").json["data"]
    assert listed == [
        {
            "attributes": {"uri": "https://example.com/hook", "secret": attributes["secret"]},
            "id": hook["id"],
            "type": "webhook",
        }
    ]
    patched = oauth.send(
        "PATCH",
        f"/webhooks/{hook['id']}",
        {
            "data": {
                "id": hook["id"],
                "type": "webhook",
                "attributes": {"triggers": ["members:update"], "paused": "true"},
            }
        },
    )
    assert patched.status_code == 200
    assert patched.json["data"]["attributes"]["triggers"] == ["members:update"]
    assert patched.json["data"]["attributes"]["paused"] is True
    assert oauth.send("DELETE", f"/webhooks/{hook['id']}").status_code == 204
    assert oauth.get("/webhooks").json["data"] == []
    error_of(oauth.send("DELETE", f"/webhooks/{hook['id']}"), 404, "NotFound")


def test_webhook_validation(oauth):
    error_of(create_webhook(oauth, triggers=["pledges:create"]), 400, "ParameterInvalid")
    error_of(create_webhook(oauth, triggers=[]), 400, "ParameterInvalid")
    error_of(create_webhook(oauth, uri="not-a-url"), 400, "ParameterInvalid")
    no_campaign = oauth.send(
        "POST",
        "/webhooks",
        {
            "data": {
                "type": "webhook",
                "attributes": {"triggers": ["members:create"], "uri": "https://x.example"},
            }
        },
    )
    error_of(no_campaign, 400, "ParameterInvalid")
    error_of(oauth.send("POST", "/webhooks", {"nope": 1}), 400, "ParameterInvalid")
    hook_id = create_webhook(oauth).json["data"]["id"]
    bad_pause = oauth.send(
        "PATCH",
        f"/webhooks/{hook_id}",
        {"data": {"type": "webhook", "attributes": {"paused": "maybe"}}},
    )
    error_of(bad_pause, 400, "ParameterInvalid")


def test_webhooks_belong_to_their_client_and_campaign_owner(oauth, sandbox):
    create_webhook(oauth)
    user_id = next(iter(sandbox.world.members.values())).user_id
    patron = oauth.login(scope="identity w:campaigns.webhook", user_id=user_id)["access_token"]
    assert oauth.get("/webhooks", token=patron).json["data"] == []
    error_of(create_webhook_as(oauth, patron), 403, "Forbidden")


def create_webhook_as(oauth, token):
    return oauth.send(
        "POST",
        "/webhooks",
        {
            "data": {
                "type": "webhook",
                "attributes": {"triggers": ["members:create"], "uri": "https://x.example"},
                "relationships": {"campaign": {"data": {"type": "campaign", "id": "1001"}}},
            }
        },
        token=token,
    )
