"""A headless Chromium for browser tests, driven over the DevTools protocol (CDP).

Debian's ``chromium`` (``.ci/run`` installs it) is started with
``--remote-debugging-port=0``; it writes the port it chose to ``DevToolsActivePort`` in
its profile folder, and its page target takes JSON commands over a WebSocket
(simple-websocket, already a dependency). Only what the tests need: navigate,
evaluate, wait for a condition, screenshot, and the page's console errors.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import simple_websocket

START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed: apt-get install chromium (.ci/run does) to run the browser tests")


class CdpError(Exception):
    pass


class Chromium:
    def __init__(self, *, width: int = 1200, height: int = 1000):
        self.profile = Path(tempfile.mkdtemp(prefix="pb-chromium-"))
        self.process = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--no-sandbox",  # tests run as root in CI containers, where the sandbox cannot start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        try:
            port = self._debugging_port()
            pages = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            page = next(target for target in pages if target["type"] == "page")
            self.ws = simple_websocket.Client.connect(page["webSocketDebuggerUrl"], max_message_size=None)
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _debugging_port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CdpError(f"chromium exited with {self.process.returncode} before it served")
            if marker.exists():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.05)
        raise CdpError(f"chromium wrote no DevToolsActivePort within {START_TIMEOUT_S:g} s")

    # -- the protocol ----------------------------------------------------------------
    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline:
            raw = self.ws.receive(timeout=max(0.01, deadline - time.monotonic()))
            if raw is None:
                continue
            message = json.loads(raw)
            if message.get("id") == message_id:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)
        raise CdpError(f"no answer to {method} within {COMMAND_TIMEOUT_S:g} s")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 15.0, what: str | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy (across page loads)."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
                if last:
                    return last
            except CdpError as ex:  # a page in the middle of loading has no context yet
                last = ex
            time.sleep(0.1)
        url = self.url()
        raise TimeoutError(f"timed out waiting for {what or expression} on {url} (last: {last!r})")

    def url(self) -> str:
        try:
            return self.evaluate("location.href")
        except CdpError:
            return "(loading)"

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def page_errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and CSP refusals the pages reported."""
        self.send("Runtime.evaluate", expression="0")  # collect the events sent so far
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                errors.append(str(params["exceptionDetails"].get("exception", {}).get("description")))
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif event["method"] == "Log.entryAdded":
                entry = params["entry"]
                # A missing /favicon.ico (a JSON 404) is the only network error expected.
                if entry["level"] == "error" and "favicon.ico" not in entry.get("url", ""):
                    errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}")
        return errors

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
