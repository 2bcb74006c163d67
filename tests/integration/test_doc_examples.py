"""Every documented example runs as written, top to bottom, in order, against a live
sandbox stack (issue 14): the blocks fenced as ```` ```sh example ```` in README.md,
docs/api.md and docs/sandbox.md, in that order, each run by bash (``-e -o pipefail``)
in one working folder, as a user pasting them into one terminal would.

What the runner adds, and nothing else:

* the default addresses in the text (``127.0.0.1:6969``, ``localhost:6969``,
  ``127.0.0.1:6970``) are replaced by the stack's, which runs on free ports;
* the stack is started with ``BRIDGE_API_KEY=dev-key``, as the Quick start says for
  the server-key examples;
* shell variables a block assigns (``STATE=...``) are carried to the next blocks;
* a block whose info string says ``retry`` (``sh example retry``: the docs say "a
  moment after") is re-run for up to 3 s while it fails.

A block fails on a non-zero exit, or when its output carries an error code: the
bridge's and the sandbox control API's ``"code": "..."``, Patreon's ``code_name``, an
OAuth ``"error": "invalid_..."``, or when a ``# Location: X`` comment in it (what
the docs promise a redirect shows) is not in its output. A block may name the codes
it expects with ``expect=CODE[,CODE]`` in its info string.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.stack import REPO, Stack

DOCS = ("README.md", "docs/api.md", "docs/sandbox.md")
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
ASSIGNED = re.compile(r"^\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
ERROR_CODES = (
    re.compile(r'"code"\s*:\s*"([A-Za-z_]+)"'),
    re.compile(r'"code_name"\s*:\s*"([A-Za-z_]+)"'),
    re.compile(r'"error"\s*:\s*"(invalid_\w+|unsupported_\w+|unauthorized_client|access_denied)"'),
)
PROMISED_LOCATION = re.compile(r"^# Location: (\S+)$", re.MULTILINE)
BLOCK_TIMEOUT_S = 60
RETRY_FOR_S = 3.0


@dataclass(frozen=True)
class Example:
    source: str
    line: int
    script: str
    retry: bool
    expected: frozenset[str]

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


def examples(doc: str) -> list[Example]:
    text = (REPO / doc).read_text()
    found = []
    for match in FENCE.finditer(text):
        words = (match.group(1) + match.group(2)).split()
        if words[:2] != ["sh", "example"]:
            continue
        expected = frozenset(
            code for word in words[2:] if word.startswith("expect=") for code in word[7:].split(",")
        )
        line = text.count("\n", 0, match.start()) + 1
        found.append(Example(doc, line, match.group(3), "retry" in words[2:], expected))
    return found


def all_examples() -> list[Example]:
    return [example for doc in DOCS for example in examples(doc)]


def localized(script: str, stack: Stack) -> str:
    web = stack.base_url.removeprefix("http://")
    return (
        script.replace("127.0.0.1:6969", web)
        .replace("localhost:6969", web)
        .replace("127.0.0.1:6970", stack.sandbox_url.removeprefix("http://"))
    )


def unexpected_codes(output: str, expected: frozenset[str]) -> list[str]:
    return [code for pattern in ERROR_CODES for code in pattern.findall(output) if code not in expected]


def missing_locations(script: str, output: str) -> list[str]:
    shown = {line.strip().lower() for line in output.splitlines()}
    return [where for where in PROMISED_LOCATION.findall(script) if f"location: {where}".lower() not in shown]


def test_every_doc_marks_its_examples():
    per_doc = {doc: len(examples(doc)) for doc in DOCS}
    print(f"\nexamples: {per_doc}")
    assert all(per_doc.values()), per_doc


def test_the_finder_sees_codes_and_expectations():
    assert unexpected_codes('{"success": false, "code": "INVALID_STATE"}', frozenset()) == ["INVALID_STATE"]
    assert unexpected_codes('{"success": false, "code": "INVALID_STATE"}', frozenset({"INVALID_STATE"})) == []
    assert unexpected_codes('{"errors": [{"code": 1, "code_name": "Unauthorized"}]}', frozenset()) == [
        "Unauthorized"
    ]
    assert unexpected_codes('{"error": "invalid_grant"}', frozenset()) == ["invalid_grant"]
    assert unexpected_codes('{"success": true, "pong": true}', frozenset()) == []
    script = "curl -si x | grep -i '^location'\n# Location: /demo\n"
    assert missing_locations(script, "location: /demo\r\n") == []
    assert missing_locations(script, "location: /\r\n") == ["/demo"]


@pytest.fixture(scope="module")
def stack():
    with Stack({"BRIDGE_API_KEY": "dev-key"}, name="pb-docs") as running:
        yield running


def test_the_examples_run_top_to_bottom_in_order(stack, tmp_path):
    state = tmp_path / "vars.sh"
    state.write_text("")
    names: set[str] = set()
    ran = []
    for example in all_examples():
        script = localized(example.script, stack)
        names |= set(ASSIGNED.findall(script))
        wrapped = (
            f"set -e -o pipefail\nsource {state}\n{script}\n"
            f"declare -p {' '.join(sorted(names)) or 'BASH'} > {state}.new 2>/dev/null || true\n"
        )
        give_up = time.monotonic() + (RETRY_FOR_S if example.retry else 0)
        while True:
            result = subprocess.run(
                ["bash", "-c", wrapped],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_S,
                env={**stack.env, "HOME": str(tmp_path)},
            )
            output = result.stdout + result.stderr
            bad = unexpected_codes(output, example.expected) + missing_locations(script, output)
            if (result.returncode == 0 and not bad) or time.monotonic() > give_up:
                break
            time.sleep(0.1)
        assert result.returncode == 0, (
            f"{example} exited {result.returncode}:\n{script}\n---\n{output[-3000:]}"
        )
        assert not bad, f"{example} answered {bad}:\n{script}\n---\n{output[-3000:]}"
        Path(f"{state}.new").replace(state)
        ran.append(str(example))
    print(f"\nran {len(ran)} example blocks in order: {', '.join(ran)}")
    assert len(ran) >= 10
