"""schemathesis fuzzes the running stack (real supervisord, worker, sandbox) against
web's OpenAPI document (/api/patreon/openapi.json): any 5xx, any error that is not
JSON, any status or body the document does not describe fails the test (issue 16).

Bounded: ``MAX_EXAMPLES`` per operation and a fixed seed, so a run takes seconds and
is repeatable. The endless streams (SSE, Socket.IO long-polls: tag ``stream``) and the
test-only routes (they stop the worker on purpose) are left out; everything else is
fuzzed with the server key, which reaches the most code. The number of generated
requests is printed (``pytest -s``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.stack import Stack

KEY = "openapi-fuzz-server-key-5c1e"
MAX_EXAMPLES = 10
# Patreon's real limits (and ours, matched to them) would make the fuzz wait out the
# budget: a listing with all=true then takes longer than a request may. Raised here.
FAST = {
    "PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS": "10000",
    "PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE": "100000",
    "SANDBOX_RATE_LIMIT_PER_2_SECONDS": "10000",
    "SANDBOX_RATE_LIMIT_PER_MINUTE": "100000",
}
SEED = 16
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.timeout(240)
def test_schemathesis_finds_no_failure_against_the_running_stack(tmp_path):
    schemathesis = Path(sys.executable).parent / "schemathesis"
    assert schemathesis.exists(), "schemathesis is a test dependency: pip install -r requirements-dev.txt"
    with Stack({"BRIDGE_API_KEY": KEY, "BRIDGE_TEST_ACTIONS": "0", **FAST}, name="pb-fuzz") as stack:
        done = subprocess.run(
            [
                str(schemathesis),
                "run",
                stack.url("/api/patreon/openapi.json"),
                "--checks",
                CHECKS,
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--header",
                f"Authorization: Bearer {KEY}",
                "--exclude-tag",
                "stream",
                "--exclude-tag",
                "test-only",
                "--request-timeout",
                "30",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=200,
            cwd=tmp_path,
        )
        web_log = stack.log_text("web")
    summary = done.stdout[-4000:]
    generated = re.search(r"(\d+) generated", done.stdout)
    print(f"\nschemathesis: {generated.group(0) if generated else '?'} requests; exit {done.returncode}")
    assert done.returncode == 0, summary + done.stderr[-2000:]
    assert generated and int(generated.group(1)) >= 200, summary
    assert "Traceback" not in web_log, web_log[-3000:]
