"""The web process: a Falcon WSGI app served by waitress.

It owns HTTP (sessions, input validation, the webhook receiver, live streams) and
never calls Patreon itself: every Patreon operation is a request to the worker.
"""
