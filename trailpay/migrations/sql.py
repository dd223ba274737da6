"""Run the .sql file that sits beside an Alembic revision (triggers and DDL live there).

asyncpg runs a multi-statement script only through its simple-query path, so the
script goes to the driver connection under Alembic's, inside its transaction.
"""

from pathlib import Path

from alembic import op
from sqlalchemy.util import await_only


def run_sql_beside(revision_file: str) -> None:
    driver = op.get_bind().connection.driver_connection
    await_only(driver.execute(Path(revision_file).with_suffix(".sql").read_text()))
