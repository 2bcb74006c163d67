"""`python -m sandbox` as a real process on a free port, with its state in a folder of
its own; it can be stopped (SIGTERM or SIGKILL) and started again on the same port
and state file, as supervisord restarts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from harness.stack import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0
CLIENT_ID = "sandbox-client-id"  # the documented defaults
CLIENT_SECRET = "sandbox-client-secret"
CREATOR_TOKEN = "sandbox-creator-access-token"
CREATOR_REFRESH = "sandbox-creator-refresh-token"
REDIRECT_URI = "http://127.0.0.1:6969/auth/patreon/callback"
UA = {"User-Agent": "sandbox-process-tests/1.0"}


class SandboxProcess:
    def __init__(self, folder: Path, env: dict[str, str] | None = None):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "sandbox.log"
        scrubbed = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SANDBOX_", "PATREON_")) and k not in ("HOST", "PORT", "DATA_DIR")
        }
        self.env = (
            scrubbed
            | {
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                "SANDBOX_PORT": str(self.port),
                "SANDBOX_MEMBERS": "30",
                "DATA_DIR": str(folder / "var"),
            }
            | (env or {})
        )
        self.process: subprocess.Popen | None = None
        self.state_dir = folder / "var" / "sandbox-state"

    def start(self) -> SandboxProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox"],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"sandbox exited with {self.process.returncode}:\n{self.logs()}")
            return requests.get(f"{self.url}/_sandbox/state", timeout=1).status_code == 200

        wait_for(answers, START_TIMEOUT_S, what=f"the sandbox on {self.url}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, token: str = CREATOR_TOKEN, **kw: Any) -> requests.Response:
        headers = UA | {"Authorization": f"Bearer {token}"}
        return requests.request(method, f"{self.url}/api/oauth2/v2{path}", headers=headers, timeout=5, **kw)

    def token(self, **fields: str) -> requests.Response:
        form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET} | fields
        return requests.post(f"{self.url}/api/oauth2/token", data=form, headers=UA, timeout=5)

    def authorize(self, scope: str, user_id: str = "1") -> str:
        """Approve the consent form as `user_id`; returns the code."""
        from urllib.parse import parse_qs, urlsplit

        result = requests.post(
            f"{self.url}/oauth2/authorize",
            data={
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": REDIRECT_URI,
                "scope": scope,
                "state": "s",
                "user_id": user_id,
                "decision": "allow",
            },
            allow_redirects=False,
            timeout=5,
        )
        assert result.status_code == 302, result.text
        return parse_qs(urlsplit(result.headers["Location"]).query)["code"][0]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=5)
        assert response.status_code < 300, response.text
        return response.json()
