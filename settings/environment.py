"""Where configuration comes from, and the one live-mode rule, for every process
(web, worker, watchdog and the sandbox).

``read_environment`` merges the process environment over ``.env`` in the project
folder (supervisord runs every program there: ``directory=%(here)s``), with
python-dotenv's syntax. ``live_mode`` decides sandbox versus live: any Patreon
credential set means live mode; none at all means the bundled sandbox stands in for
patreon.com.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

# supervisord runs every program in the folder of supervisord.conf (directory=%(here)s),
# so the working directory is the project folder: .env and var/ are found there.
PROJECT_DIR = Path.cwd()

# sysexits.h EX_CONFIG: supervisord shows it, and tests tell it from a crash.
EXIT_CONFIG = 78

# The credentials whose presence decides live mode.
LIVE_CREDENTIALS = (
    "PATREON_CLIENT_ID",
    "PATREON_CLIENT_SECRET",
    "PATREON_CREATOR_ACCESS_TOKEN",
    "PATREON_CREATOR_REFRESH_TOKEN",
)


def read_environment(
    environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> dict[str, str]:
    """The environment (``os.environ`` unless given) over the ``.env`` file's values."""
    environ = os.environ if environ is None else environ
    dotenv_path = PROJECT_DIR / ".env" if dotenv_path is None else dotenv_path
    from_file = dotenv_values(dotenv_path) if dotenv_path.is_file() else {}
    values = {k: v for k, v in from_file.items() if v is not None}
    values.update(environ)
    return values


def live_mode(values: Mapping[str, str]) -> bool:
    """True when any Patreon credential is set (blank counts as unset)."""
    return any((values.get(name) or "").strip() for name in LIVE_CREDENTIALS)
