"""The server key: several keys during a rotation, none when the mode is off."""

from __future__ import annotations

from pathlib import Path

import falcon
import falcon.testing
import pytest

from settings.config import load_config
from web.errors import ApiError
from web.serverkey import is_server_request, key_matches


def config_with(key: str | None):
    return load_config({"BRIDGE_API_KEY": key} if key is not None else {}, Path("/nonexistent/.env"))


def request(authorization: str | None) -> falcon.Request:
    headers = {"Authorization": authorization} if authorization else {}
    return falcon.Request(falcon.testing.create_environ(headers=headers))


def test_every_listed_key_is_accepted_during_a_rotation():
    config = config_with("new-key, old-key")
    assert config.bridge_api_keys == ("new-key", "old-key")
    assert key_matches(config, "new-key") and key_matches(config, "old-key")
    assert not key_matches(config, "new-key, old-key")
    assert is_server_request(request("Bearer old-key"), config)


def test_no_key_is_not_a_server_request_and_a_wrong_one_is_refused():
    config = config_with("the-key")
    assert is_server_request(request(None), config) is False
    with pytest.raises(ApiError) as caught:
        is_server_request(request("Bearer guess"), config)
    assert (caught.value.status_code, caught.value.code) == (401, "INVALID_API_KEY")


def test_with_no_key_configured_every_key_is_refused():
    config = config_with(None)
    assert config.bridge_api_keys == ()
    assert not key_matches(config, "")
    with pytest.raises(ApiError):
        is_server_request(request("Bearer anything"), config)


def test_a_key_that_is_not_valid_unicode_does_not_match():
    # Socket.IO's auth={"key": "\ud800"} arrives as a lone surrogate: refused, not a crash.
    assert key_matches(config_with("the-key"), "\ud800") is False
