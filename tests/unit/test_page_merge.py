"""worker.page_merge: scanning listing pages as text and joining them, checked
against json.loads of the same bytes."""

from __future__ import annotations

import json

import pytest

from patreon_client.errors import PatreonError
from worker.page_merge import merged_document, peek_cursor, scan_page

PAGE = {
    "data": [
        {"type": "member", "id": "m1", "attributes": {"full_name": "Zoë ☃", "note": 'a"b}]'}},
        {"type": "member", "id": "m2", "attributes": {"cents": 500, "nested": [1, {"x": None}]}},
    ],
    "included": [{"type": "tier", "id": "t1", "attributes": {"title": "Gold"}}],
    "links": {"next": "https://example/next"},
    "meta": {"pagination": {"total": 2, "cursors": {"next": "abc"}}},
}


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(PAGE).encode(),  # ASCII, u-escapes
        json.dumps(PAGE, ensure_ascii=False, indent=2).encode(),  # UTF-8, whitespace everywhere
        json.dumps(PAGE, separators=(",", ":")).encode(),
    ],
)
def test_a_page_scans_to_its_resources_text_and_its_other_members(raw: bytes):
    page = scan_page(raw)
    assert [k for k, _ in page.data] == [("member", "m1"), ("member", "m2")]
    assert [json.loads(text) for _, text in page.data] == PAGE["data"]
    assert [json.loads(text) for _, text in page.included] == PAGE["included"]
    assert page.top == {"links": PAGE["links"], "meta": PAGE["meta"]}
    assert page.cursor() == "abc" and page.total() == 2


def test_the_merged_document_is_the_pages_resources_once_each():
    first = scan_page(json.dumps(PAGE).encode())
    second = scan_page(
        json.dumps(
            {"data": [{"type": "member", "id": "m3"}], "included": PAGE["included"]}, ensure_ascii=False
        ).encode()
    )
    data = {k: t for page in (first, second) for k, t in page.data}
    included = {}
    for page in (first, second):
        for k, t in page.included:
            included.setdefault(k, t)
    raw = merged_document(list(data.values()), list(included.values()), {"count": 3})
    doc = json.loads(raw)
    assert [d["id"] for d in doc["data"]] == ["m1", "m2", "m3"]
    assert doc["data"][0]["attributes"]["full_name"] == "Zoë ☃"
    assert doc["included"] == PAGE["included"] and doc["meta"] == {"count": 3}
    assert "included" not in json.loads(merged_document(["{}"], [], {}))


def test_empty_lists_and_a_repeated_member():
    page = scan_page(b'{"data": [], "data": [{"type":"member","id":"x"}], "included": [ ]}')
    assert [k for k, _ in page.data] == [("member", "x")] and page.included == []
    assert scan_page(b'{"data":[]}').data == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"data": [}',
        b'{"data": [{"type":"member","id":"1"},]}',
        b'{"data": [{"type":"member","id":"1"}] "meta": {}}',
        b'{"data": [{"type":"member","id":"1"}]} trailing',
        b'{"meta": {}}',  # no data list
        b'{"data": {"type":"member","id":"1"}}',  # a single resource, not a listing
        b'{"data": [1]}',  # a resource that is not an object
        b'{"data": [], "included": {"a": 1}}',
        b'{"data": [NaN]}',
        b'{"data": [], "x": }',
        b"\xff",
        b"[" * 100_000,
    ],
)
def test_a_page_that_is_not_a_listing_document_is_refused(raw: bytes):
    with pytest.raises(PatreonError):
        scan_page(raw)


def test_the_next_cursor_is_read_off_the_tail_only_when_meta_is_last():
    assert peek_cursor(json.dumps(PAGE).encode()) == "abc"
    assert peek_cursor(json.dumps(PAGE, indent=2).encode() + b"\n") == "abc"
    last_page = {**PAGE, "meta": {"pagination": {"total": 2, "cursors": {"next": None}}}}
    assert peek_cursor(json.dumps(last_page).encode()) is None
    meta_first = {"meta": PAGE["meta"], "data": PAGE["data"]}
    assert peek_cursor(json.dumps(meta_first).encode()) is None
    assert peek_cursor(b'{"data": [], "meta": {"pagination": ') is None
    assert peek_cursor(b'{"data": []}') is None
