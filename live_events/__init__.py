"""The live-events contract: what web (the REST API, ``GET /api/patreon/webhooks/events``,
the subscribe-token endpoint) and the live program (``live/``: Socket.IO and SSE) must
agree on, in one place. It imports neither program.

* ``codes``: the error codes both programs answer (defined here once).
* ``errors``: the JSON error body ``{"success": false, "error", "code"}`` and ``ApiError``.
* ``subscribers``: who may subscribe (the server key, a creator's session).
* ``cursor``: a client's event id (``since``, ``Last-Event-ID``, ``auth.since``).
* ``wire_format``: an event's name, its aliases and its SSE frame.
* ``engineio_errors``: engine.io's refusals in the JSON error body.
* ``tokens``: subscribe tokens (web mints them, live verifies them).
* ``settings``: what both read of live's configuration (the token key, the wake-up
  endpoints, ``LIVE_PORT``).
* ``wakeup``: web's push to live after each commit (live's listeners: ``live.notify``).
"""
