"""The wire protocol between web and worker: ZeroMQ envelopes (``protocol``), the
client web uses (``client``) and the Patreon vocabulary action payloads carry
(``patreon_schema``)."""

# The release web and worker run: ping reports it and /status shows it.
__version__ = "0.1.0"
