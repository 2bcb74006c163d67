"""deploy/: the systemd unit and the nginx snippet, checked by the real tools.

* ``systemd-analyze verify`` on a copy of the unit whose /opt/patreon-bridge paths
  point at a temp folder laid out like an install (so ExecStart's binary exists); it
  must print no warning at all (it exits 0 even for unknown keys, so the test reads
  its output). It does not check that ``User=`` exists.
* The unit's own ExecStart, Environment and WorkingDirectory start the real stack in
  that layout (with the venv's python first on PATH), and SIGTERM, which systemd sends
  under ``KillMode=mixed``, stops it cleanly well inside ``TimeoutStopSec``.
* ``nginx -t`` accepts the snippet inside a minimal nginx.conf; then a real nginx with
  the snippet proxies that stack: plain API calls, an SSE event delivered at once (the
  snippet's ``proxy_buffering off`` and web's own ``X-Accel-Buffering: no`` each ensure
  that, so this checks the path end to end, not the directive alone), and test-only
  routes blocked. Without nginx or systemd-analyze those tests skip with the reason.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from harness.stack import CODE, REPO, body, free_port, wait_for
from tests.live_clients import WebSocketSubscriber
from tests.webhook_deliveries import PATH as WEBHOOK_PATH
from tests.webhook_deliveries import encode, member_document, signed_headers

UNIT = REPO / "deploy" / "patreon-bridge.service"
NGINX_SNIPPET = REPO / "deploy" / "nginx.conf"
SNIPPET_ACCESS_LOG = "/var/log/nginx/patreon-bridge.access.log"
INSTALL_DIR = "/opt/patreon-bridge"
SERVER_KEY = "deploy-test-server-key"
WEBHOOK_SECRET = "sandbox-webhook-secret"


def unit_settings(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, by key (Environment= may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"unexpected time value {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


# -- an install-like layout -----------------------------------------------------------------
@pytest.fixture(scope="module")
def install_root():
    """A temp folder shaped like /opt/patreon-bridge: code, supervisord.conf, var/, venv/bin."""
    root = Path(tempfile.mkdtemp(prefix="pb-deploy-"))
    for entry in CODE:
        (root / entry).symlink_to(REPO / entry)
    (root / "var" / "log").mkdir(parents=True)
    # A real venv, as an operator's install has: a symlinked interpreter would lose the
    # running venv's pyvenv.cfg and with it every installed package. The .pth file lends
    # it the running interpreter's packages, so this works under any python a user has.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    bin_dir = root / "venv" / "bin"
    venv_site = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    running_site = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(venv_site) / "running-interpreter.pth").write_text("\n".join(sorted(running_site)) + "\n")
    supervisord = shutil.which("supervisord", path=str(Path(sys.executable).parent)) or shutil.which(
        "supervisord"
    )
    assert supervisord, "supervisord's console script is not installed"
    (bin_dir / "supervisord").symlink_to(supervisord)
    (root / "patreon-bridge.service").write_text(UNIT.read_text().replace(INSTALL_DIR, str(root)))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_systemd_analyze_verify_accepts_the_unit(install_root: Path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze is not installed: apt-get install systemd (.ci/run does) to verify the unit")
    unit = install_root / "patreon-bridge.service"
    out = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (out.stdout + out.stderr).strip() == "", out.stdout + out.stderr
    # The check can fail: a broken copy is reported.
    broken = install_root / "broken.service"
    broken.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=gently"))
    out = subprocess.run([tool, "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "kill mode" in out.stderr.lower(), out.stderr


def test_unit_settings_match_supervisord_conf():
    unit = unit_settings(UNIT.read_text())
    assert unit["KillMode"] == ["mixed"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["User"] == ["patreon-bridge"]
    assert unit["ExecStart"][0].split()[1:] == ["-n", "-c", f"{INSTALL_DIR}/supervisord.conf"]
    assert f"{INSTALL_DIR}/var" in unit["ReadWritePaths"][0].split()
    conf = configparser.RawConfigParser()
    conf.read(REPO / "supervisord.conf")
    programs = [s for s in conf.sections() if s.startswith(("program:", "eventlistener:"))]
    waits = [int(conf.get(s, "stopwaitsecs", fallback="10")) for s in programs]
    # supervisord stops group after group: the sum of every stopwaitsecs is the worst case.
    assert seconds(unit["TimeoutStopSec"][0]) > sum(waits), (unit["TimeoutStopSec"], waits)


@pytest.fixture(scope="module")
def unit_stack(install_root: Path):
    """The stack started exactly as the unit starts it, in the install-like folder."""
    unit = unit_settings((install_root / "patreon-bridge.service").read_text())
    env = dict(kv.split("=", 1) for kv in unit["Environment"])
    assert env["PATH"].split(":")[0] == str(install_root / "venv" / "bin")
    port, sandbox_port, live_port = free_port(), free_port(), free_port()
    env.update(
        # What an operator's .env would hold; here in the environment so the repo's own
        # .env (if any) is never read: the working directory is the temp folder.
        PORT=str(port),
        SANDBOX_PORT=str(sandbox_port),
        LIVE_PORT=str(live_port),
        BRIDGE_API_KEY=SERVER_KEY,
        TRUSTED_PROXY="127.0.0.1",
        BRIDGE_TEST_ACTIONS="1",
    )
    process = subprocess.Popen(
        shlex.split(unit["ExecStart"][0]),
        cwd=unit["WorkingDirectory"][0],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: requests.get(base_url + "/api/patreon/health", timeout=2).status_code == 200,
            30,
            what=f"the stack started by the unit's ExecStart (logs in {install_root / 'var' / 'log'})",
        )
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{live_port}/api/patreon/live/health", timeout=2).ok,
            30,
            what="the live program started by the unit's ExecStart",
        )
        unit["live_port"] = live_port
        yield process, base_url, unit
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_the_units_command_line_runs_the_stack(unit_stack, install_root: Path):
    _process, base_url, _unit = unit_stack
    status = body(requests.get(base_url + "/api/patreon/status", timeout=5))["status"]
    assert status["available"] is True and status["watchdog"]["program"] == "patreon:worker_00"
    assert (install_root / "var" / "supervisor.sock").exists()
    assert (install_root / "var" / "log" / "watchdog.log").exists()


# -- nginx ---------------------------------------------------------------------------------------
def nginx_binary() -> str:
    """nginx from Debian's nginx-light (``.ci/run`` installs it); skipped, loudly, without it."""
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if not found:
        pytest.skip("nginx is not installed: apt-get install nginx-light (.ci/run does) to run the nginx tests")
    return found


def nginx_conf(folder: Path, snippet: str, extra: str = "") -> Path:
    """A minimal nginx.conf around the snippet, with every path inside ``folder``."""
    assert snippet.count(SNIPPET_ACCESS_LOG) == 1
    snippet = snippet.replace(SNIPPET_ACCESS_LOG, str(folder / "bridge-access.log"))
    (folder / "snippet.conf").write_text(snippet)
    conf = folder / "nginx.conf"
    conf.write_text(
        f"pid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log;\n"
        f"{extra}"
        "events {}\n"
        "http {\n"
        f"    access_log {folder}/access.log;\n"
        f"    client_body_temp_path {folder}/body;\n"
        f"    proxy_temp_path {folder}/proxy;\n"
        f"    include {folder}/snippet.conf;\n"
        "}\n"
    )
    return conf


def test_nginx_t_accepts_the_snippet(tmp_path: Path):
    nginx = nginx_binary()
    conf = nginx_conf(tmp_path, NGINX_SNIPPET.read_text())
    out = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr
    # ...and it can fail: a broken snippet is rejected.
    conf = nginx_conf(
        tmp_path, NGINX_SNIPPET.read_text().replace("proxy_buffering off;", "proxy_buffering sideways;")
    )
    out = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0


def test_forwarded_headers_are_the_ones_waitress_trusts():
    snippet = NGINX_SNIPPET.read_text()
    sent = set(re.findall(r"proxy_set_header\s+(X-Forwarded-[A-Za-z]+)", snippet))
    assert sent == {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}
    web_main = (REPO / "web" / "__main__.py").read_text()
    for header in sent:
        assert f'"{header.lower()}"' in web_main, f"web/__main__.py does not trust {header}"


@contextlib.contextmanager
def running_nginx(base_url: str, live_port: int, folder: Path, snippet: str | None = None) -> Iterator[str]:
    """A real nginx with the snippet on a free (non-default) port, proxying ``base_url``
    (web) and ``live_port`` (the live program); yields its own URL."""
    nginx = nginx_binary()
    stack_port = base_url.rsplit(":", 1)[1]
    listen = free_port()
    snippet = NGINX_SNIPPET.read_text() if snippet is None else snippet
    assert snippet.count("server 127.0.0.1:6969;") == 1 and snippet.count("listen 80;") == 1
    assert snippet.count("server 127.0.0.1:6971;") == 1
    snippet = snippet.replace("server 127.0.0.1:6969;", f"server 127.0.0.1:{stack_port};")
    snippet = snippet.replace("server 127.0.0.1:6971;", f"server 127.0.0.1:{live_port};")
    snippet = snippet.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    conf = nginx_conf(folder, snippet, extra="daemon off;\nmaster_process off;\n")
    proxy = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    front = f"http://127.0.0.1:{listen}"
    try:
        wait_for(
            lambda: requests.get(front + "/api/patreon/health", timeout=2).status_code == 200,
            10,
            what=f"nginx on {front} (errors in {folder / 'error.log'})",
        )
        yield front
    finally:
        proxy.terminate()
        proxy.wait(10)


def socketio_handshake(front: str) -> requests.Response:
    """engine.io's first long-poll, as a browser on the page at ``front`` sends it."""
    return requests.get(
        front + "/socket.io/",
        params={"EIO": "4", "transport": "polling"},
        headers={"Origin": front},
        timeout=5,
    )


def test_socketio_through_nginx_on_a_non_default_port(unit_stack, tmp_path: Path):
    _process, base_url, unit = unit_stack
    with running_nginx(base_url, unit["live_port"], tmp_path) as front:
        # The browser's Origin carries the port; the Host nginx forwards must too.
        handshake = socketio_handshake(front)
        assert handshake.status_code == 200, handshake.text
        assert handshake.text.startswith("0{") and '"sid"' in handshake.text
        assert handshake.headers["Access-Control-Allow-Origin"] == front
        # A whole client through nginx hears a webhook the bridge accepts.
        heard = threading.Event()
        client = socketio.Client(reconnection=False)

        def on_event(data):
            if "deploy-sio-check" in json.dumps(data):
                heard.set()

        client.on("patreon:webhook", on_event)
        client.connect(front, auth={"key": SERVER_KEY}, headers={"Origin": front}, transports=["polling"])
        try:
            time.sleep(0.3)  # seated by the tail thread within a tick
            payload = encode(member_document(note="deploy-sio-check"))
            resp = requests.post(
                front + WEBHOOK_PATH, data=payload, headers=signed_headers(WEBHOOK_SECRET, payload), timeout=5
            )
            assert resp.status_code == 200, resp.text
            assert heard.wait(10), "no Socket.IO event through nginx within 10 s"
        finally:
            client.disconnect()
    # ...and the check can fail: with $host (the port dropped) the same handshake is refused.
    old = NGINX_SNIPPET.read_text().replace("$http_host;", "$host;")
    assert "$http_host;" not in old
    (tmp_path / "old").mkdir()
    with running_nginx(base_url, unit["live_port"], tmp_path / "old", snippet=old) as front:
        refused = socketio_handshake(front)
        assert (refused.status_code, refused.json()["code"]) == (400, "ORIGIN_NOT_ALLOWED"), refused.text


def test_nginx_proxies_the_stack_and_delivers_sse_at_once(unit_stack, tmp_path: Path):
    _process, base_url, unit = unit_stack
    with running_nginx(base_url, unit["live_port"], tmp_path) as front:
        assert requests.get(base_url + "/api/patreon/_test/sleep?ms=1", timeout=5).status_code == 200
        assert requests.get(front + "/api/patreon/_test/sleep?ms=1", timeout=5).status_code == 404

        # The access log has the path, never the query (OAuth codes, states, ?key=).
        requests.get(front + "/auth/patreon/callback?code=logged-code-123&state=s", timeout=5)
        requests.get(front + "/api/patreon/events?key=logged-key-456", timeout=5)
        access = (tmp_path / "bridge-access.log").read_text()
        assert "/auth/patreon/callback" in access and "/api/patreon/events" in access
        assert "logged-code-123" not in access and "logged-key-456" not in access

        # A body just over the bridge's 1 MiB gets the bridge's JSON 413, not nginx's page.
        big = requests.post(front + WEBHOOK_PATH, data=b"x" * (1024 * 1024 + 10), timeout=10)
        assert big.status_code == 413 and big.json()["code"] == "PAYLOAD_TOO_LARGE", big.text

        # Login starts are rate limited per address.
        statuses = [
            requests.get(front + "/auth/patreon", allow_redirects=False, timeout=5).status_code
            for _ in range(40)
        ]
        assert 429 in statuses and statuses[0] == 302, statuses

        # An SSE stream through nginx: an event accepted by the bridge arrives at once.
        got = threading.Event()
        lines: list[str] = []

        def listen_stream():
            with requests.get(
                front + "/api/patreon/events",
                headers={"Authorization": f"Bearer {SERVER_KEY}"},
                stream=True,
                timeout=(5, 15),
            ) as resp:
                lines.append(f"status {resp.status_code}")
                for line in resp.iter_lines(decode_unicode=True):
                    lines.append(line)
                    if line.startswith("data:") and "deploy-sse-check" in line:
                        got.set()
                        return

        reader = threading.Thread(target=listen_stream, daemon=True)
        reader.start()
        wait_for(lambda: lines, 5, what="the SSE stream to open through nginx")
        assert lines[0] == "status 200", lines
        payload = encode(member_document(note="deploy-sse-check"))
        sent_at = time.monotonic()
        resp = requests.post(
            front + WEBHOOK_PATH, data=payload, headers=signed_headers(WEBHOOK_SECRET, payload), timeout=5
        )
        assert resp.status_code == 200, resp.text
        assert got.wait(5), f"no event through nginx within 5 s: {lines}"
        print(f"\nSSE through nginx: event delivered {time.monotonic() - sent_at:.2f} s after the webhook")

        # Socket.IO over WebSocket through nginx (the Upgrade passed on) to the live program.
        async def websocket_through_nginx() -> tuple[int, list[int]]:
            client = WebSocketSubscriber("127.0.0.1", int(front.rsplit(":", 1)[1]), {"key": SERVER_KEY}).start()
            await asyncio.wait_for(client.connected.wait(), 10)
            await asyncio.sleep(0.3)
            raw = encode(member_document("deploy-ws-check", note="deploy-ws-check"))
            resp = await asyncio.to_thread(
                requests.post, front + WEBHOOK_PATH, data=raw, headers=signed_headers(WEBHOOK_SECRET, raw), timeout=5
            )
            event_id = resp.json()["id"]
            for _ in range(100):
                if event_id in client.received:
                    break
                await asyncio.sleep(0.05)
            await client.stop()
            return event_id, list(client.received)

        event_id, heard = asyncio.run(websocket_through_nginx())
        assert heard == [event_id], heard


def test_sigterm_stops_the_units_stack_within_timeout_stop_sec(unit_stack, install_root: Path):
    # Last in this module: it ends the shared stack. SIGTERM to supervisord only, as
    # systemd sends it under KillMode=mixed.
    process, _base_url, unit = unit_stack
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    limit_s = seconds(unit["TimeoutStopSec"][0])
    assert process.wait(limit_s) == 0
    took = time.monotonic() - started
    print(
        f"\nSIGTERM to the unit's supervisord: everything stopped in {took:.2f} s (TimeoutStopSec {limit_s:g} s)"
    )
    log = (install_root / "var" / "log" / "supervisord.log").read_text()
    assert "SIGKILL" not in log, log


def test_nginx_timeouts_outlast_the_bridge_calls():
    snippet = NGINX_SNIPPET.read_text()
    # The server-wide read timeout covers /api/patreon/ reads: all=true may take 120 s.
    server_wide = re.search(r"\n    proxy_read_timeout (\d+)s;", snippet)
    assert server_wide and int(server_wide.group(1)) >= 150
    socketio = snippet.split("location /socket.io/", 1)[1].split("}", 1)[0]
    assert int(re.search(r"proxy_read_timeout (\d+)s;", socketio).group(1)) >= 25
    assert "client_max_body_size 2m;" in snippet
    log_format = snippet.split("log_format", 1)[1].split(";", 1)[0]
    for leaky in ("$request ", '$request"', "$request_uri", "$args", "$query_string", "$http_referer"):
        assert leaky not in log_format, leaky
