"""The contract tests' marker: `undocumented` = pins a behaviour Patreon does not
document (the sandbox's choice, docs/sandbox.md); run them live to re-check it."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "undocumented: checks behaviour Patreon does not document (the sandbox's choice)"
    )
