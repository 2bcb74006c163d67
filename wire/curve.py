"""ZeroMQ CURVE for workers on other hosts: the ZeroMQ guide's Ironhouse pattern.

A worker reached over ``tcp://`` encrypts and authenticates every connection when
``PATREON_WORKER_CURVE_DIR`` names a key folder::

    server.key / server.key_secret      the worker's pair (every worker host holds it)
    client.key / client.key_secret      web's (and the watchdog's) pair
    allowed_clients/*.key               the client public keys a worker accepts

``python -m wire.keys generate DIR`` makes a fresh folder (pyzmq's
``zmq.auth.create_certificates``); docs/scaling-out.md has the rotation procedure.
The worker runs pyzmq's ``ThreadAuthenticator`` (ZAP) with the allow-list: a client
with a key not on it, or with no CURVE at all, gets no answer (its handshake fails,
nothing reaches the worker's loop) and the worker logs one line saying why. The
client side (``client_options``) applies the client pair and the server's public key
to each socket it opens; every web socket to a worker (calls, heartbeats, pings)
goes through it.

ipc:// on one host needs none of this: the socket file's permissions are the guard,
and with no key folder nothing here runs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

log = logging.getLogger(__name__)

SERVER = "server"
CLIENT = "client"
ALLOWED = "allowed_clients"
ZAP_DOMAIN = "patreon-bridge"
REFUSAL_LOG_EVERY_S = 10.0  # a refused client retries (its heartbeat): one line per key this often


class KeysMissing(Exception):
    """The key folder lacks a file it needs (the message names it)."""


def _pair(folder: Path, name: str) -> tuple[bytes, bytes]:
    path = folder / f"{name}.key_secret"
    if not path.is_file():
        raise KeysMissing(f"{path} is missing (python -m wire.keys generate {folder})")
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise KeysMissing(f"{path} holds no secret key")
    return public, secret


def _public(folder: Path, name: str) -> bytes:
    path = folder / f"{name}.key"
    if not path.is_file():
        raise KeysMissing(f"{path} is missing (python -m wire.keys generate {folder})")
    public, _ = zmq.auth.load_certificate(path)
    return public


@dataclasses.dataclass(frozen=True)
class ClientOptions:
    """What a client socket needs to talk to a CURVE worker."""

    public: bytes
    secret: bytes = dataclasses.field(repr=False)
    server_public: bytes

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server_public


def client_options(folder: Path | None) -> ClientOptions | None:
    """The client's keys from ``folder`` (None: no CURVE)."""
    if folder is None:
        return None
    public, secret = _pair(folder, CLIENT)
    return ClientOptions(public, secret, _public(folder, SERVER))


def secure(sock: zmq.Socket, options: ClientOptions | None, endpoint: str) -> zmq.Socket:
    """Apply CURVE to a client socket before it connects (tcp:// only)."""
    if options is not None and endpoint.startswith("tcp://"):
        options.apply(sock)
    return sock


class _LoggingAuthenticator(ThreadAuthenticator):
    """pyzmq's authenticator, plus one clear warning line per refused key (its own
    lines are debug level)."""

    _allow_dir: Path
    _last_logged: dict[bytes, float]

    async def _authenticate_curve(self, domain: str, client_key: bytes) -> tuple[bool, bytes]:
        allowed, reason = await super()._authenticate_curve(domain, client_key)
        now = time.monotonic()
        if (
            not allowed
            and now - self._last_logged.get(client_key, -REFUSAL_LOG_EVERY_S) >= REFUSAL_LOG_EVERY_S
        ):
            self._last_logged[client_key] = now
            # A public key is no secret; its first characters tell an operator which one.
            shown = z85.encode(client_key)[:8].decode("ascii", "replace")
            log.warning(
                "refused a worker client: its CURVE key %s... is not in %s (%s)",
                shown,
                self._allow_dir,
                reason.decode("ascii", "replace"),
            )
        return allowed, reason


class ServerSecurity:
    """The worker's side: its key pair on the ROUTER socket, the ZAP authenticator
    holding the allow-list, running for the socket's whole life."""

    def __init__(self, folder: Path, context: zmq.Context):
        self.public, self._secret = _pair(folder, SERVER)
        self.allow_dir = folder / ALLOWED
        if not self.allow_dir.is_dir() or not any(self.allow_dir.glob("*.key")):
            raise KeysMissing(f"{self.allow_dir} holds no client public key (*.key)")
        self._auth = _LoggingAuthenticator(context, log=logging.getLogger("zmq.auth"))
        self._auth._allow_dir = self.allow_dir
        self._auth._last_logged = {}

    def start(self) -> None:
        self._auth.start()
        self._auth.configure_curve(domain=ZAP_DOMAIN, location=str(self.allow_dir))
        count = len(list(self.allow_dir.glob("*.key")))
        log.info("CURVE on: %d allowed client key(s) in %s", count, self.allow_dir)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_server = True
        sock.curve_publickey = self.public
        sock.curve_secretkey = self._secret
        # Not the default domain: ZAP is asked for every connection, so a NULL
        # (keyless) client cannot slip through as "no ZAP handler".
        sock.zap_domain = ZAP_DOMAIN.encode()

    def stop(self) -> None:
        self._auth.stop()


def generate(folder: Path) -> dict[str, Path]:
    """A fresh key folder: the server pair, one client pair, that client allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ALLOWED).mkdir(exist_ok=True)
    server_public, server_secret = zmq.auth.create_certificates(str(folder), SERVER)
    client_public, client_secret = zmq.auth.create_certificates(str(folder), CLIENT)
    allowed = folder / ALLOWED / Path(client_public).name
    allowed.write_bytes(Path(client_public).read_bytes())
    for secret in (server_secret, client_secret):
        Path(secret).chmod(0o600)
    return {
        "server_public": Path(server_public),
        "server_secret": Path(server_secret),
        "client_public": Path(client_public),
        "client_secret": Path(client_secret),
        "allowed": allowed,
    }
