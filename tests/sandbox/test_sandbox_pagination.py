"""Pagination as Patreon does it: page[count], opaque cursors, links.next, total, sort."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest


@pytest.fixture
def big(make_sandbox):
    from falcon import testing

    sandbox = make_sandbox(members=2500)
    return sandbox, testing.TestClient(sandbox.app, headers={"User-Agent": "pagination-tests"})


def get(client, token, path, query=""):
    return client.simulate_get(path, query_string=query, headers={"Authorization": f"Bearer {token}"})


def walk(client, token, query):
    """Follow meta.pagination.cursors.next to the end; return the pages."""
    pages = []
    cursor = None
    while True:
        q = query + (f"&page%5Bcursor%5D={cursor}" if cursor else "")
        result = get(client, token, "/api/oauth2/v2/campaigns/1001/members", q)
        assert result.status_code == 200, result.text
        pages.append(result.json)
        cursor = result.json["meta"]["pagination"]["cursors"]["next"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "cursor loop"


def test_every_one_of_2500_members_exactly_once(big, oauth):
    sandbox, client = big
    pages = walk(client, oauth.creator_token, "page%5Bcount%5D=1000")
    assert [len(p["data"]) for p in pages] == [1000, 1000, 500]
    ids = [m["id"] for p in pages for m in p["data"]]
    assert len(ids) == len(set(ids)) == 2500
    assert set(ids) == set(sandbox.world.members)
    assert all(p["meta"]["pagination"]["total"] == 2500 for p in pages)
    # Issue 15 item 10: the last page keeps `links` but has no `next` (see
    # tests/patreon_docs/test_documented_behaviour.py for the source).
    assert "next" in pages[0]["links"] and "next" not in pages[-1]["links"]


def test_links_next_is_the_full_url_of_the_next_page(big, oauth):
    _, client = big
    first = get(
        client,
        oauth.creator_token,
        "/api/oauth2/v2/campaigns/1001/members",
        "page%5Bcount%5D=1000&fields%5Bmember%5D=full_name",
    ).json
    next_url = urlsplit(first["links"]["next"])
    assert next_url.path == "/api/oauth2/v2/campaigns/1001/members"
    second = get(client, oauth.creator_token, next_url.path, next_url.query).json
    assert set(second["data"][0]["attributes"]) == {"full_name"}
    assert not {m["id"] for m in first["data"]} & {m["id"] for m in second["data"]}


def test_default_page_size_is_20(oauth):
    doc = oauth.get("/campaigns/1001/members").json
    assert len(doc["data"]) == 20
    assert doc["meta"]["pagination"]["total"] == 60


def test_sort_descending_visits_everyone_once_in_order(big, oauth):
    _, client = big
    pages = walk(
        client,
        oauth.creator_token,
        "page%5Bcount%5D=700&sort=-pledge_relationship_start&fields%5Bmember%5D=pledge_relationship_start",
    )
    starts = [m["attributes"]["pledge_relationship_start"] for p in pages for m in p["data"]]
    assert len(starts) == 2500
    assert starts == sorted(starts, reverse=True)


def test_sort_by_two_keys(oauth):
    doc = oauth.get(
        "/campaigns/1001/members",
        query="page%5Bcount%5D=60&sort=-currently_entitled_amount_cents,full_name"
        "&fields%5Bmember%5D=currently_entitled_amount_cents,full_name",
    ).json
    rows = [
        (-m["attributes"]["currently_entitled_amount_cents"], m["attributes"]["full_name"])
        for m in doc["data"]
    ]
    assert rows == sorted(rows)


def test_a_member_removed_between_pages_neither_repeats_nor_hides_others(oauth, sandbox):
    first = oauth.get("/campaigns/1001/members", query="page%5Bcount%5D=10").json
    removed = oauth.client.simulate_delete(f"/_sandbox/members/{first['data'][3]['id']}")
    assert removed.status_code == 200
    cursor = first["meta"]["pagination"]["cursors"]["next"]
    rest = []
    while cursor:
        page = oauth.get(
            "/campaigns/1001/members", query=f"page%5Bcount%5D=10&page%5Bcursor%5D={cursor}"
        ).json
        rest += [m["id"] for m in page["data"]]
        cursor = page["meta"]["pagination"]["cursors"]["next"]
    seen = [m["id"] for m in first["data"]] + rest
    assert len(seen) == len(set(seen)) == 60


@pytest.mark.parametrize(
    "query",
    [
        "page%5Bcount%5D=1001",
        "page%5Bcount%5D=0",
        "page%5Bcount%5D=ten",
        "page%5Bcount%5D=501&include=pledge_history",
        "page%5Bcursor%5D=not-a-cursor",
        "sort=shoe_size",
    ],
)
def test_bad_paging_parameters_are_400(oauth, query):
    result = oauth.get("/campaigns/1001/members", query=query)
    assert result.status_code == 400, result.text
    assert result.json["errors"][0]["code_name"] == "ParameterInvalid"


def test_pledge_history_allows_500(oauth):
    doc = oauth.get("/campaigns/1001/members", query="page%5Bcount%5D=500&include=pledge_history").json
    assert len(doc["data"]) == 60
    assert {r["type"] for r in doc["included"]} == {"pledge-event"}


def test_a_cursor_belongs_to_its_sort(oauth):
    first = oauth.get("/campaigns/1001/members", query="page%5Bcount%5D=10").json
    cursor = first["meta"]["pagination"]["cursors"]["next"]
    other = oauth.get("/campaigns/1001/members", query=f"sort=full_name&page%5Bcursor%5D={cursor}")
    assert other.status_code == 400


def test_page_size_is_not_a_patreon_parameter(oauth):
    doc = oauth.get("/campaigns/1001/members", query="page%5Bsize%5D=50").json
    assert len(doc["data"]) == 20
