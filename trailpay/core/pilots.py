"""Pilots (A/B): which arm a partner falls in.

A hash split must not move partners between arms when others join: each partner's arm
depends only on (pilot id, partner id), through sha256 mapped to a uniform number in
[0, 1); the partner is in treatment when that number is below the ratio. No clock, no
random state: the same pilot assigns the same partners the same way on any machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from decimal import Decimal

CONTROL, TREATMENT = "control", "treatment"


def uniform(pilot_id: str, partner_id: str) -> Decimal:
    """A number in [0, 1) from sha256(pilot id, NUL, partner id): 64 bits of it, exactly."""
    digest = hashlib.sha256(f"{pilot_id}\0{partner_id}".encode()).digest()
    return Decimal(int.from_bytes(digest[:8], "big")) / Decimal(2 ** 64)


def arm(pilot_id: str, partner_id: str, partner_type: str, assignment: Mapping) -> str:
    """The arm of one partner. assignment: {"partners": [...]} | {"types": [...]} |
    {"hash": {"ratio": "0.5"}} (the share of partners in treatment)."""
    if "partners" in assignment:
        return TREATMENT if partner_id in set(assignment["partners"]) else CONTROL
    if "types" in assignment:
        return TREATMENT if partner_type in set(assignment["types"]) else CONTROL
    ratio = Decimal(str(assignment["hash"]["ratio"]))
    return TREATMENT if uniform(pilot_id, partner_id) < ratio else CONTROL


def arms(pilot_id: str, partners: Iterable[tuple[str, str]], assignment: Mapping
         ) -> dict[str, str]:
    """partner -> arm for (partner id, type) pairs."""
    return {p: arm(pilot_id, p, t, assignment) for p, t in partners}
