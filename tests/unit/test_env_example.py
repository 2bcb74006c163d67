""".env.example documents every variable the configuration modules read, and the values
it shows are the defaults: loading it as a .env changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.settings import SandboxSettings
from settings.config import load_config
from settings.environment import read_environment

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPO / ".env.example"
NO_ENV_FILE = Path("/nonexistent/.env")
CONFIG_MODULES = (
    REPO / "settings" / "config.py",
    REPO / "settings" / "environment.py",
    REPO / "sandbox" / "settings.py",
    REPO / "live" / "settings.py",
    REPO / "live_events" / "settings.py",
)


def variables_read_by(path: Path) -> set[str]:
    # Every environment variable name appears in these modules as a string literal.
    return set(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+|HOST|PORT)"', path.read_text()))


def documented() -> set[str]:
    return set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE))


def test_every_variable_is_documented():
    read = set().union(*(variables_read_by(path) for path in CONFIG_MODULES))
    assert "WATCHDOG_CRASH_LIMIT" in read and "SANDBOX_MEMBERS" in read  # the scan works
    missing = read - documented()
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_no_stale_variables_are_documented():
    read = set().union(*(variables_read_by(path) for path in CONFIG_MODULES))
    assert documented() <= read, f".env.example documents unknown {sorted(documented() - read)}"


def test_the_values_shown_are_the_defaults():
    assert load_config({}, EXAMPLE) == load_config({}, NO_ENV_FILE)
    example = read_environment({}, EXAMPLE)
    assert SandboxSettings.from_env(example) == SandboxSettings.from_env({})
