"""Values in PostgreSQL's COPY text format, for the posting legs' write path.

asyncpg's binary COPY encodes each numeric through `Decimal.as_tuple()` and digit
arithmetic on Python objects: about 0.85 µs a value, and a posting leg has up to six.
In text format a Decimal is its `str()` (about 60 ns; PostgreSQL reads the exponent
form too), and the columns a posting group's legs share are formatted once per group.
See docs/decisions.md ("Posting legs are COPYed as text").

Text format: columns are separated by tabs, rows end with a newline, NULL is `\\N`, and
a backslash, tab, newline or carriage return inside a value is escaped with a backslash.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text(value: str | None) -> str:
    """A text column: NULL, or the value with COPY's specials escaped."""
    if value is None:
        return NULL
    # isprintable() is False for tab, newline and carriage return (and other controls,
    # which translate() leaves as they are): the usual id or sentence skips translate().
    if value.isprintable() and "\\" not in value:
        return value
    return value.translate(_ESCAPES)


def number(value: Decimal | int | None) -> str:
    """A numeric or integer column."""
    return NULL if value is None else str(value)


def stamp(value: datetime) -> str:
    """A timestamptz column; a naive time is UTC, as asyncpg's binary encoder takes it."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def day(value: date | None) -> str:
    """A date column."""
    return NULL if value is None else value.isoformat()
