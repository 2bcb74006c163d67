"""The live program: webhook events pushed to the site's whole audience.

An asyncio server (Falcon's ASGI app on uvicorn, python-socketio's ``AsyncServer``
mounted in front) holding Socket.IO (WebSocket, polling as fallback) and SSE
connections without a thread each. One tail of the event log per process
(``live.hub``), woken by web after each commit (``live.notify``). See
``live.audience`` for who hears what and ``live_events.tokens`` for subscribe tokens.
"""
