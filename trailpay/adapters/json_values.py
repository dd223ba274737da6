"""Free-form JSON values (a partner's payment details and overrides, a plan document)
checked before they are stored: what JSON, jsonb and orjson can hold, and nothing else.

Python's JSON parser reads NaN, Infinity and 1e400 (as inf) and integers of any size;
orjson then writes NaN and inf as null and refuses integers past 64 bits or nesting
past 255 levels. So a NaN was stored as null and a 400-digit integer was a 500.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 32
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 64 - 1  # what orjson writes


class ValueRefused(ValueError):
    """`field` (a dotted path) holds something that JSON storage cannot keep as it is."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check(value: Any, field: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise ValueRefused naming the first value (in document order) that is not plain
    JSON: an object with string keys, an array, a string, a finite number, an integer
    within 64 bits, true, false or null, nested at most `max_depth` containers deep."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        v, at, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth >= max_depth:
                raise ValueRefused(at, f"nested deeper than {max_depth} levels")
            items = list(v.items() if isinstance(v, dict) else enumerate(v))
            for k, child in reversed(items):  # popped in document order
                if isinstance(v, dict) and not isinstance(k, str):
                    raise ValueRefused(at, f"keys must be strings, got {k!r}")
                stack.append((child, f"{at}[{k}]" if isinstance(k, int) else f"{at}.{k}",
                              depth + 1))
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ValueRefused(at, f"must be a finite number, got {v!r} (NaN, Infinity "
                                       "and numbers beyond a double's range are refused)")
        elif isinstance(v, int) and not isinstance(v, bool):
            if not _INT_MIN <= v <= _INT_MAX:
                raise ValueRefused(at, "an integer must fit in 64 bits; send a long number "
                                       "as a string")
        elif not (v is None or isinstance(v, str | bool)):
            raise ValueRefused(at, f"is not a JSON value ({type(v).__name__})")
