"""Re-encrypt the store's tokens and webhook secrets under the first key of
``BRIDGE_ENCRYPTION_KEY``: ``python -m store.rekey``.

A key rotation (docs/security.md): generate a key (``python -m store.rekey
--new-key``), put it first in ``BRIDGE_ENCRYPTION_KEY`` with the old key after it,
restart, run this, then drop the old key and restart again. It runs in one
transaction beside running processes, reads the same configuration they do (the
environment, then ``.env``), and prints only counts, never a value.
"""

from __future__ import annotations

import argparse
import sys

from settings.config import EXIT_CONFIG, ConfigError, load_config
from store.database import Store
from store.encryption import KeyMissing, UndecryptableValue, cipher_for, new_key, seal_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store.rekey", description=__doc__.splitlines()[0])
    parser.add_argument("--new-key", action="store_true", help="print a new key and exit")
    args = parser.parse_args(argv)
    if args.new_key:
        print(new_key())
        return 0
    try:
        config = load_config()
        cipher = cipher_for(config)
    except ConfigError as ex:
        for line in ex.lines():
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    except KeyMissing as ex:
        print(f"❌ Configuration error: {ex}", file=sys.stderr)
        return EXIT_CONFIG
    store = Store(config.database_url, cipher)
    store.migrate()
    try:
        changed = seal_all(store, cipher, rotate=True)
    except UndecryptableValue as ex:
        print(f"❌ {ex}: nothing was changed", file=sys.stderr)
        return EXIT_CONFIG
    print(f"re-encrypted {changed} row(s) under the first key of BRIDGE_ENCRYPTION_KEY")
    return 0


if __name__ == "__main__":
    sys.exit(main())
