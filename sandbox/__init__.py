"""A local stand-in for patreon.com: OAuth, API v2, rate limits and signed webhooks.

Run it with `python -m sandbox`; see docs/sandbox.md. Modules, one job each:

    settings    configuration dataclass (read from the environment by __main__ only)
    data        the seeded world and every change to it
    schema      Patreon's v2 resource types (attributes, relationships)
    jsonapi     sparse fieldsets and includes
    pagination  page[count], opaque keyset cursors, sort
    oauth       authorize page, codes, tokens, rotation
    ratelimit   sliding-window limits per client and per token
    gate        User-Agent, bearer token and rate limits in front of /api/
    api         API v2 resources
    webhooks    webhook registry, signed payloads, queued delivery with retries,
                delivery faults (drop, delay, reorder, stale retry)
    faults      injected latency, errors (JSON or the edge's HTML) and 429s
    edge        the edge block after too many 4xx
    persistence the state kept across restarts (atomic JSON files)
    control     the /_sandbox/ control API
    counters    what was served, for /_sandbox/state
    accesslog   one log line per request, never a query string
    errors      the error types and the one place they are rendered
    app         wiring: build() and create_app()
"""
