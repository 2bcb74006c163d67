"""web refuses to start cleanly when its port is taken: one line, its own exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from harness.stack import REPO


def test_a_taken_port_is_one_clear_line_and_exit_69(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "DATA_DIR": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "web"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 69
    assert f"❌ web cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigint_stops_web_like_sigterm(tmp_path):
    import signal

    from harness.stack import free_port, wait_for

    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "web"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    try:

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 15, what="web to listen")
        process.send_signal(signal.SIGINT)  # Ctrl-C
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, err
    assert "received SIGINT: finishing in-flight requests" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
