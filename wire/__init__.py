"""The wire protocol between web and worker: ZeroMQ envelopes (``protocol``), the
client web uses (``client``) and the Patreon vocabulary action payloads carry
(``patreon_schema``)."""
