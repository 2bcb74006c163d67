"""Configuration read from the environment (and .env), and process logging.

    environment  where values come from (environment over .env) and the live-mode rule
    reader       the typed reader: one (variable, problem) per bad variable
    config       per-process settings (WebSettings, WorkerSettings, WatchdogSettings),
                 validated once; bad configuration exits 78 (EX_CONFIG)
    logs         process logging and the request id

Settings are frozen dataclasses, not pydantic-settings (the issue's suggestion): the
tests and operators rely on exact one-line messages per bad variable
(``❌ Configuration error: PORT must be between 1 and 65535, got 0``, the sandbox's
``SANDBOX_PORT: expected an integer, got 'x'``), which pydantic's ValidationError
would have to be re-rendered into field by field; most rules span variables (live
mode, the creator pair, sandbox defaults feeding the API base), which would be model validators anyway; and it would add pydantic,
pydantic-core, annotated-types and typing-inspection to every process's start-up for
about 150 lines of reading code we already have and test.
"""
