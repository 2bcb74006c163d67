"""The Patreon worker: every call to Patreon happens in this process.

It also owns the contract between web and worker (``protocol``, ``client``), and the
modules both processes share (``config``, ``store``).
"""

__version__ = "0.1.0"
