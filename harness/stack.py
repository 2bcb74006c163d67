"""A real stack for tests and benchmarks: supervisord with the real supervisord.conf.

Each ``Stack`` gets its own folder (under the system temp dir, short enough for
ipc:// and unix socket paths) holding a *symlink* to the repository's
supervisord.conf and to the code packages. supervisord takes ``%(here)s`` from the
path it was given, so every piece of state (socket, pid file, logs, the SQLite store,
the worker's ipc socket) lands in that folder, never in the developer's own var/, and
two stacks can run side by side. The folder has no ``.env``: the developer's own
settings never leak into a test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
# What an install holds: supervisord.conf and every top-level package the programs import.
CODE = (
    "supervisord.conf",
    "web",
    "worker",
    "watchdog_listener",
    "entitlements",
    "wire",
    "store",
    "patreon_client",
    "settings",
    "sandbox",
    "live",
    "live_events",
)
START_TIMEOUT_S = 30.0

# Variables of the developer's shell that would change what the stack does.
_SCRUBBED_PREFIXES = ("PATREON_", "SANDBOX_", "BRIDGE_", "SESSION_", "WEB_", "WORKER_", "WATCHDOG_", "LIVE_")
_SCRUBBED = {"PORT", "HOST", "DATA_DIR", "DATABASE_URL", "DATABASE_POOL_SIZE", "TRUSTED_PROXY", "POST_LOGIN_URL", "DEMO_PAGE"} | {
    "LOGIN_RATE_LIMIT_PER_MINUTE",
    "ALLOWED_ORIGINS",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(
    predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.05, what: str = "condition"
) -> Any:
    """Poll until ``predicate()`` is truthy; fail loudly at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (requests.RequestException, OSError, ValueError) as ex:
            last_error = ex
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what} (last error: {last_error!r})")


class Stack:
    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        name: str = "pb",
        workers: int = 1,
        webs: int = 1,
        lives: int = 1,
        sandbox_of: Stack | None = None,
    ):
        """``sandbox_of``: use that (running) stack's sandbox instead of starting one, so
        two stacks talk to one "patreon.com" (one rate limit, one token table)."""
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        for entry in CODE:
            (self.dir / entry).symlink_to(REPO / entry)
        (self.dir / "var" / "log").mkdir(parents=True)
        self.workers, self.webs, self.lives = workers, webs, lives
        if workers > 1 or webs > 1 or lives > 1 or sandbox_of is not None:
            # The documented override (supervisord.conf's [include]), not an edited copy.
            (self.dir / "supervisord.d").mkdir()
            (self.dir / "supervisord.d" / "scale.conf").write_text(
                f"[program:worker]\nnumprocs={workers}\n\n[program:web]\nnumprocs={webs}\n"
                f"\n[program:live]\nnumprocs={lives}\n"
                + ("\n[program:sandbox]\nautostart=false\n" if sandbox_of is not None else "")
            )
        self.conf = self.dir / "supervisord.conf"
        self.port = free_port()
        while webs > 1 and not all(_port_free(self.port + i) for i in range(webs)):
            self.port = free_port()  # web_NN listens on PORT + NN
        self.sandbox_port = sandbox_of.sandbox_port if sandbox_of is not None else free_port()
        self.live_port = free_port()  # the live program (live/): its own port, no nginx in tests
        while lives > 1 and not all(_port_free(self.live_port + i) for i in range(lives)):
            self.live_port = free_port()  # live_NN listens on LIVE_PORT + NN
        base = {
            k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith(_SCRUBBED_PREFIXES)
        }
        self.env = {
            **base,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DATA_DIR": str(self.dir / "var"),
            "SANDBOX_PORT": str(self.sandbox_port),
            "LIVE_PORT": str(self.live_port),
            "BRIDGE_TEST_ACTIONS": "1",
            # Every test logs in from 127.0.0.1: the per-client login limit would count
            # them all as one client (a test that checks the limit sets its own).
            "LOGIN_RATE_LIMIT_PER_MINUTE": "100000",
            **({"WORKER_PROCESSES": str(workers)} if workers > 1 else {}),
            **({"LIVE_PROCESSES": str(lives)} if lives > 1 else {}),
            **(env or {}),
        }
        # The store: the stack's own SQLite file unless ``env`` names a DATABASE_URL
        # (a PostgreSQL database several stacks may share).
        self.database_url = self.env.get("DATABASE_URL") or f"sqlite:///{self.dir / 'var' / 'bridge.sqlite3'}"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.web_urls = [f"http://127.0.0.1:{self.port + i}" for i in range(webs)]
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.live_url = f"http://127.0.0.1:{self.live_port}"
        self.live_urls = [f"http://127.0.0.1:{self.live_port + i}" for i in range(lives)]
        self.process: subprocess.Popen | None = None

    def cipher(self):
        """The cipher web and worker seal tokens and webhook secrets with: the stack's
        BRIDGE_ENCRYPTION_KEY, or the key the sandbox mode generated under var/."""
        from store.encryption import Cipher, keys_for

        configured = tuple(
            k.strip() for k in self.env.get("BRIDGE_ENCRYPTION_KEY", "").split(",") if k.strip()
        )
        return Cipher(keys_for("sandbox", configured, self.dir / "var"))

    # -- lifecycle -------------------------------------------------------------
    def start(self, *, wait: bool = True, timeout_s: float = START_TIMEOUT_S) -> Stack:
        """Start supervisord; with ``wait``, until web and worker serve (stop it on failure)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
            cwd=self.dir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait:
            try:
                self.wait_healthy(timeout_s)
            except BaseException:
                self.stop()
                self.print_log_tails()  # pytest shows it with the failure
                raise
        return self

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        wait_for(
            lambda: self.get("/api/patreon/health", timeout=2).status_code == 200,
            timeout_s,
            what=f"stack health on {self.base_url} (logs in {self.dir / 'var' / 'log'})",
        )
        # Health answers as soon as both serve; supervisord calls them RUNNING after startsecs.
        programs = [f"patreon:worker_{i:02d}" for i in range(self.workers)]
        programs += [f"patreon:web_{i:02d}" for i in range(self.webs)]
        wait_for(
            lambda: all(self.state(program) == "RUNNING" for program in programs),
            timeout_s,
            interval_s=0.2,
            what="supervisord to report every web and worker RUNNING",
        )

    def wait_live(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every live process serves (tests of live/ call it; the others need not wait)."""
        wait_for(
            lambda: all(
                requests.get(url + "/api/patreon/live/health", timeout=2).status_code == 200
                for url in self.live_urls
            ),
            timeout_s,
            what=f"the live program on {self.live_url} (logs in {self.dir / 'var' / 'log'})",
        )

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        if self.process is None:
            try:
                self.start()
            except BaseException:
                self.cleanup()  # a stack that failed to come up must not outlive the test
                raise
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # -- supervisorctl -----------------------------------------------------------
    def ctl(self, *args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf), *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def pid(self, program: str) -> int:
        out = self.ctl("pid", program).stdout.strip()
        return int(out) if out.isdigit() and out != "0" else 0

    def state(self, program: str) -> str:
        out = self.ctl("status", program).stdout.split()
        return out[1] if len(out) > 1 else "UNKNOWN"

    # -- HTTP ----------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 10)
        return requests.get(self.url(path), **kw)

    def post(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 10)
        return requests.post(self.url(path), **kw)

    def sandbox(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 10)
        return requests.request(method, self.sandbox_url + path, **kw)

    # -- logs -----------------------------------------------------------------------
    def log_files(self) -> list[Path]:
        return sorted((self.dir / "var" / "log").glob("*.log*"))

    def print_log_tails(self, lines: int = 15) -> None:
        for path in self.log_files():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- {path.name} (last {len(tail)} lines)", *tail, sep="\n")

    def log_text(self, program: str) -> str:
        """A program's log; for "worker", "web" or "live" (numprocs programs, one log
        per process: worker_00.log, ...) every process's log, one after another."""
        path = self.dir / "var" / "log" / f"{program}.log"
        if path.exists():
            return path.read_text(errors="replace")
        parts = sorted((self.dir / "var" / "log").glob(f"{program}_[0-9][0-9].log"))
        return "".join(p.read_text(errors="replace") for p in parts)


def body(resp: requests.Response) -> dict[str, Any]:
    """The JSON body of a response, with a readable failure when it is not JSON."""
    try:
        return resp.json()
    except ValueError as ex:
        raise AssertionError(f"not JSON ({resp.status_code}): {resp.text[:300]!r}") from ex


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
