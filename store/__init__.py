"""The SQLite store: connection discipline and migrations (``database``), and one module
per table, each naming the one program that owns it."""
