"""``python -m wire.keys generate DIR``: CURVE keys for workers on other hosts.

Writes ``DIR/server.key(_secret)``, ``DIR/client.key(_secret)`` and
``DIR/allowed_clients/client.key`` (see ``wire.curve``), refusing to overwrite an
existing folder's keys. ``python -m wire.keys allow DIR PUBLIC_KEY_FILE`` adds a
client's public key to the allow-list (a rotation step, docs/scaling-out.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from wire.curve import ALLOWED, SERVER, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wire.keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="a fresh key folder")
    gen.add_argument("folder", type=Path)
    allow = commands.add_parser("allow", help="add a client public key to the allow-list")
    allow.add_argument("folder", type=Path)
    allow.add_argument("public_key", type=Path)
    args = parser.parse_args(argv)
    if args.command == "generate":
        if (args.folder / f"{SERVER}.key_secret").exists():
            print(f"{args.folder} already holds keys; use a new folder to rotate", file=sys.stderr)
            return 1
        for name, path in generate(args.folder).items():
            print(f"{name}: {path}")
        return 0
    target = args.folder / ALLOWED / args.public_key.name
    shutil.copyfile(args.public_key, target)
    print(f"allowed: {target} (restart the workers to load it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
