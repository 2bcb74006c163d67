"""Alembic's environment: migrations run on the connection ``Store.migrate`` hands over
(inside its transaction and migration lock), never on a connection of their own."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
