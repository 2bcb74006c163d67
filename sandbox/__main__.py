"""`python -m sandbox [--supervised]`: read the configuration once, build, serve.

- Configuration: the environment, over the project's `.env` (current directory).
  Bad values print one line per bad variable to stderr and exit 78.
- `--supervised` (how supervisord.conf runs it): in live mode (any Patreon credential
  set, as the worker decides) the sandbox does not serve; it waits a little longer
  than supervisord's `startsecs` (1 s) and exits 0, so supervisord records a clean
  EXITED instead of a failed start. Without the flag it always serves.
- SIGTERM raises SystemExit so waitress lets in-flight requests finish.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

import waitress

from sandbox.app import build
from sandbox.settings import EXIT_CONFIG, SandboxSettings, SettingsError
from settings.environment import live_mode, read_environment
from settings.logs import EscapingFormatter

log = logging.getLogger("sandbox")

# Longer than supervisord's startsecs (1 s in supervisord.conf): exiting sooner would
# count as a failed start, whatever the exit code.
LIVE_MODE_EXIT_AFTER_S = 1.5


def _stop(signum, frame) -> None:
    raise SystemExit(0)


def _configure_logging() -> None:
    # The access log writes request paths: the formatter escapes their control characters.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--supervised",
        action="store_true",
        help="run under supervisord: stand aside (exit 0) when Patreon credentials are set",
    )
    args = parser.parse_args(argv)
    environ = read_environment()
    signal.signal(signal.SIGTERM, _stop)

    if args.supervised and live_mode(environ):
        _configure_logging()
        log.info("live mode (Patreon credentials are set): the sandbox does not start")
        try:
            time.sleep(LIVE_MODE_EXIT_AFTER_S)
        except SystemExit:
            pass
        return 0

    try:
        settings = SandboxSettings.from_env(environ)
    except SettingsError as ex:
        for problem in ex.problems:
            print(f"sandbox: invalid configuration: {problem}", file=sys.stderr)
        return EXIT_CONFIG

    _configure_logging()
    started = time.perf_counter()
    sandbox = build(settings)
    sandbox.webhooks.start()
    if sandbox.state_file is not None:
        sandbox.state_file.start()
    log.warning(
        "PATREON SANDBOX: a fake patreon.com on http://%s:%d (%d members, seed %d, built in %.2fs)",
        settings.host,
        settings.port,
        settings.members,
        settings.seed,
        time.perf_counter() - started,
    )
    if sandbox.restored:
        log.info("state restored from %s", settings.state_dir)
    elif settings.webhook_uri:
        log.info("seeded webhook 1 on campaign 1001 with every v2 trigger")
    try:
        waitress.serve(
            sandbox.app,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            ident="patreon-sandbox",
        )
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        sandbox.webhooks.stop()
        if sandbox.state_file is not None:
            sandbox.state_file.stop()
        log.info("sandbox stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
