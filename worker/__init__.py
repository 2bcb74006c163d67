"""The Patreon worker: every call to Patreon happens in this process.

It serves the actions of the wire protocol (``wire``) over ZeroMQ (``server``),
dispatches them to handlers (``actions``, ``patreon_actions``), and consumes stored
webhook events into member refreshes (``event_consumer``).
"""
