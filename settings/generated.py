"""A secret a sandbox install generates for itself: made once, atomically, in a file.

Several programs start together (web, worker, live) and must agree on it: the first
creates the file (``O_EXCL``, mode 0600) and writes it whole; the others read it,
waiting a moment if they catch it between create and write.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

READ_ATTEMPTS = 100


def generated_secret(path: Path, make: Callable[[], str], complete: Callable[[str], bool] = bool) -> str:
    """The secret in ``path``, made with ``make()`` if the file does not exist yet. A
    reader waits until ``complete(text)`` (another process may be between create and
    write) and returns what it last read: the caller says what is wrong with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(make() + "\n")
    text = ""
    for _ in range(READ_ATTEMPTS):
        text = path.read_text().strip()
        if complete(text):
            break
        os.sched_yield()
    return text
