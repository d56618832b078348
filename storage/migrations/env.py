"""Alembic environment: run against the connection handed over by storage.db.migrate()."""

from alembic import context
from sqlalchemy import create_engine

from storage.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` command line: use sqlalchemy.url from the ini file
    connection = create_engine(config.get_main_option("sqlalchemy.url")).connect()

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
