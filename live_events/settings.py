"""What web and the live program both read of live's configuration.

web signs subscribe tokens with the key live checks them with (``LIVE_TOKEN_KEY``,
``LIVE_TOKEN_TTL_S``), pushes each commit's wake-up to every live process's endpoint
(``LIVE_NOTIFY_ENDPOINT``, or one per ``LIVE_PROCESSES``), and points its demo page at
``LIVE_PORT``. Read like ``settings.config`` (environment first, then ``.env``; a bad
variable is a ``ConfigError`` naming it); the rest of live's settings are
``live.settings``.

The token key: ``LIVE_TOKEN_KEY`` (at least 32 characters). Unset in sandbox mode, one
is generated once under ``DATA_DIR`` (``live-token.key``, mode 0600) and read by both
programs; unset in live mode is an error for live and a 503 for web's token route.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from settings.config import ConfigError
from settings.environment import read_environment
from settings.generated import generated_secret
from settings.reader import Reader

TOKEN_KEY_FILE = "live-token.key"
MIN_TOKEN_KEY_CHARS = 32
DEFAULT_PORT = 6971


def sandbox_token_key(data_dir: Path) -> bytes:
    """The generated key of a sandbox install: made once, atomically, read by web and live."""
    path = Path(data_dir) / TOKEN_KEY_FILE
    text = generated_secret(path, lambda: secrets.token_urlsafe(48), lambda text: len(text) >= MIN_TOKEN_KEY_CHARS)
    if len(text) < MIN_TOKEN_KEY_CHARS:
        raise ConfigError([("LIVE_TOKEN_KEY", f"the generated key in {path} is unreadable")])
    return text.encode()


def port_setting(environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> int:
    """``LIVE_PORT`` alone: where web's demo page sends browsers when there is no nginx."""
    read = Reader(read_environment(environ, dotenv_path))
    port = read.integer("LIVE_PORT", DEFAULT_PORT, 1, 65535)
    if read.problems:
        raise ConfigError(read.problems)
    return port


def endpoint_settings(data_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every live process's wake-up endpoint: what web pushes each commit to."""
    read = Reader(read_environment(environ))
    found = endpoints(read, data_dir)
    if read.problems:
        raise ConfigError(read.problems)
    return found


def endpoints(read: Reader, data_dir: Path) -> tuple[str, ...]:
    """One endpoint per live process: ``LIVE_NOTIFY_ENDPOINT`` (default
    ``var/live-notify.sock``) for one, ``var/live-notify-N.sock`` for LIVE_PROCESSES=N."""
    count = read.integer("LIVE_PROCESSES", 1, 1, 100)
    if count == 1:
        endpoint = read.text("LIVE_NOTIFY_ENDPOINT", f"ipc://{Path(data_dir) / 'live-notify.sock'}")
    else:
        if read.text("LIVE_NOTIFY_ENDPOINT"):
            read.problems.append(("LIVE_NOTIFY_ENDPOINT", f"names one endpoint but LIVE_PROCESSES={count}: unset it"))
        return tuple(f"ipc://{Path(data_dir) / f'live-notify-{i}.sock'}" for i in range(count))
    if not endpoint.startswith(("ipc://", "tcp://")):
        read.problems.append(("LIVE_NOTIFY_ENDPOINT", f"must be ipc://PATH or tcp://HOST:PORT, got {endpoint!r}"))
    elif endpoint.startswith("ipc://") and len(endpoint) > 100:
        read.problems.append(("LIVE_NOTIFY_ENDPOINT", "ipc path is too long (over 100 chars)"))
    return (endpoint,)


def token_key(read: Reader, mode: str, data_dir: Path) -> bytes | None:
    """``LIVE_TOKEN_KEY``, or the sandbox's generated one; None (and a problem) otherwise."""
    key_text = read.text("LIVE_TOKEN_KEY")
    if key_text is not None:
        if len(key_text) < MIN_TOKEN_KEY_CHARS:
            read.problems.append(("LIVE_TOKEN_KEY", f"must be at least {MIN_TOKEN_KEY_CHARS} characters"))
            return None
        return key_text.encode()
    if mode == "sandbox":
        return sandbox_token_key(data_dir)
    read.problems.append(("LIVE_TOKEN_KEY", "is required in live mode (subscribe tokens are signed with it)"))
    return None


def token_ttl(read: Reader) -> float:
    """``LIVE_TOKEN_TTL_S``: a subscribe token's longest (and default) lifetime."""
    return read.seconds("LIVE_TOKEN_TTL_S", 3600.0, 10.0, 7 * 86400.0)


def token_settings(
    mode: str, data_dir: Path, environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> tuple[bytes, float]:
    """What web's token route needs: ``(key, longest lifetime in seconds)``."""
    read = Reader(read_environment(environ, dotenv_path))
    key, ttl = token_key(read, mode, data_dir), token_ttl(read)
    if read.problems or key is None:
        raise ConfigError(read.problems)
    return key, ttl
