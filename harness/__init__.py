"""Test and benchmark harness: real stacks under supervisord, shared by tests/ and bench/
(neither owns it)."""
