"""``python -m wire.keys generate DIR``: CURVE keys for workers on other hosts.

Writes ``DIR/server.key(_secret)``, ``DIR/client.key(_secret)`` and
``DIR/allowed_clients/client.key`` (see ``wire.curve``), refusing to overwrite an
existing folder's keys. For a rotation (docs/scaling-out.md):
``python -m wire.keys client DIR`` makes a new client pair in DIR, and
``python -m wire.keys allow DIR PUBLIC_KEY_FILE --as NAME`` adds a client's public key
to DIR's allow-list as ``NAME.key`` (never over an existing one).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import zmq.auth

from wire.curve import ALLOWED, CLIENT, SERVER, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wire.keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="a fresh key folder")
    gen.add_argument("folder", type=Path)
    allow = commands.add_parser("allow", help="add a client public key to the allow-list")
    allow.add_argument("folder", type=Path)
    allow.add_argument("public_key", type=Path)
    allow.add_argument("--as", dest="name", required=True, help="its file name in allowed_clients/")
    client = commands.add_parser("client", help="a new client pair (for a rotation)")
    client.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "client":
        if (args.folder / f"{CLIENT}.key_secret").exists():
            print(f"{args.folder} already holds a client pair", file=sys.stderr)
            return 1
        args.folder.mkdir(parents=True, exist_ok=True)
        public, secret = zmq.auth.create_certificates(str(args.folder), CLIENT)
        Path(secret).chmod(0o600)
        print(f"client_public: {public}\nclient_secret: {secret}")
        return 0
    if args.command == "generate":
        if (args.folder / f"{SERVER}.key_secret").exists():
            print(f"{args.folder} already holds keys; use a new folder to rotate", file=sys.stderr)
            return 1
        for name, path in generate(args.folder).items():
            print(f"{name}: {path}")
        return 0
    target = args.folder / ALLOWED / f"{args.name}.key"
    if target.exists():
        print(f"{target} exists; choose another --as name", file=sys.stderr)
        return 1
    zmq.auth.load_certificate(args.public_key)  # refuses a file that is not a key
    shutil.copyfile(args.public_key, target)
    print(f"allowed: {target} (restart the workers to load it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
