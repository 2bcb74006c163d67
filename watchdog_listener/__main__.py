"""``python -m watchdog_listener``: the supervisord event listener (see ``listener``)."""

import sys

from watchdog_listener.listener import main

sys.exit(main())
