"""Headless Chromium for the live tests, driven over the DevTools protocol: open a
page, then read an expression until it holds what the test waits for. Only what
tests/integration/test_live.py needs (Runtime.evaluate over one WebSocket)."""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
import wsproto
import wsproto.events as ws_events

from harness.stack import wait_for


def binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(self, executable: str, profile: Path):
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        self.port = int(wait_for(lambda: port_file.exists() and port_file.read_text().split()[0], 30, what="Chromium's DevTools port"))
        page = wait_for(
            lambda: next((t for t in requests.get(f"http://127.0.0.1:{self.port}/json/list", timeout=5).json() if t["type"] == "page"), None),
            30,
            what="Chromium's page target",
        )
        self._ids = itertools.count(1)
        self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._sock.sendall(self._ws.send(ws_events.Request(host=f"127.0.0.1:{self.port}", target=urlsplit(page["webSocketDebuggerUrl"]).path)))
        self._parts: list[str] = []
        self._messages: list[dict] = []
        self._accepted = False
        while not self._accepted:
            self._read()

    def _read(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            raise ConnectionError("Chromium closed the DevTools connection")
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, ws_events.AcceptConnection):
                self._accepted = True
            elif isinstance(event, ws_events.TextMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    self._messages.append(json.loads("".join(self._parts)))
                    self._parts = []
            elif isinstance(event, ws_events.Ping):
                self._sock.sendall(self._ws.send(event.response()))

    def _receive(self) -> dict:
        while not self._messages:
            self._read()
        return self._messages.pop(0)

    def call(self, method: str, **params) -> dict:
        call_id = next(self._ids)
        self._sock.sendall(self._ws.send(ws_events.Message(data=json.dumps({"id": call_id, "method": method, "params": params}))))
        while True:
            message = self._receive()
            if message.get("id") == call_id:
                return message.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    def wait_for_value(self, expression: str, predicate, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if predicate(value):
                return value
            time.sleep(0.2)
        return value

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
