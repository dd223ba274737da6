"""Is a failure the database or the broker being away, rather than a bug?

The gateway answers those with 503 and Retry-After (a client should try again, and
nothing it sent was half-done: every write is one transaction), not with a 500. Walks
the exception's causes: SQLAlchemy wraps asyncpg's errors, which wrap OSError.
"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_DATABASE = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
             asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError,
             asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
             asyncpg.exceptions.TooManyConnectionsError, OperationalError, InterfaceError,
             ConnectionError, OSError)
_BROKER = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError)


def outage(exc: BaseException) -> str | None:
    """'database' or 'broker' when `exc` (or a cause of it) says that one is away; None
    otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _BROKER):
            return "broker"
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return "database"
        if isinstance(current, _DATABASE):
            return "database"
        current = current.__cause__ or current.__context__
    return None
