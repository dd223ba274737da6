"""Run SQL scripts in a migration: the .sql file beside an Alembic revision (triggers and
DDL live there), or a script given as text.

asyncpg runs a multi-statement script only through its simple-query path, so the
script goes to the driver connection under Alembic's, inside its transaction.
"""

from pathlib import Path

from alembic import op
from sqlalchemy.util import await_only


def run_sql(script: str) -> None:
    await_only(op.get_bind().connection.driver_connection.execute(script))


def run_sql_beside(revision_file: str) -> None:
    run_sql(Path(revision_file).with_suffix(".sql").read_text())
