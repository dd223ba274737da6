"""What applying an entry did, said by the engine itself.

The shells write projections (payouts, disputes) and count metrics from these, so no
adapter has to diff partner states before and after to learn what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from trailpay.core.journal import LedgerEntry
from trailpay.core.state import Payout

# Kinds of effect.
PAYOUT_CREATED = "payout_created"  # a run sent money to payment (payout in_payout)
PAYOUT_SETTLED = "payout_settled"  # the ERP confirmed it paid, or failed
DISPUTE_OPENED = "dispute_opened"
DISPUTE_RESOLVED = "dispute_resolved"
FORFEITED = "forfeited"  # held money whose vesting deadline passed, or whose customer churned
RELEASED = "released"  # held money a milestone released
REFOLDED = "refolded"  # a late entry made the partner's history fold again (timeline.py)


@dataclass(frozen=True, slots=True)
class Effect:
    kind: str
    entry: LedgerEntry
    payout: Payout | None = None
    group_id: str | None = None  # the posting group it concerns, when there is one
    detail: str | None = None
