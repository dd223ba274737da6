"""Attributed revenue: the one definition that what-if, pilot reports and the programme's
metrics all count, so that a simulation's cost share and the economics API can never
disagree on what a fact brought in.

An entry's attributed revenue is the partner's share of what its customer fact is worth:
a deal's ACV (kind `acv` for a new deal, `expansion` or `renewal` for those deal kinds),
a renewal's ARR, an expansion's added ARR, and usage revenue. Other facts (contractions,
refunds, churn, milestones, partner-level facts) carry none. Which entries are counted is
the caller's: a what-if counts every recorded entry of its partners (a candidate may
accept what live refused), the metrics only what the live accrual applied.
"""

from __future__ import annotations

from decimal import Decimal

from trailpay.core.facts import (
    DealClosed, SubscriptionExpanded, SubscriptionRenewed, UsageReported,
)
from trailpay.core.journal import LedgerEntry

REVENUE_KINDS = ("acv", "expansion", "renewal", "usage")
_DEAL_KINDS = {"new": "acv", "expansion": "expansion"}  # any other deal kind renews


def attributed_revenue(e: LedgerEntry) -> tuple[str, str, Decimal] | None:
    """(currency, kind, amount × the partner's share) of an entry, or None: it has none.
    A plain tuple: the what-if asks it of every entry it replays."""
    f = e.fact
    if isinstance(f, DealClosed):
        return f.currency, _DEAL_KINDS.get(f.kind, "renewal"), f.acv * e.share
    if isinstance(f, SubscriptionRenewed):
        return f.currency, "renewal", f.arr * e.share
    if isinstance(f, SubscriptionExpanded):
        return f.currency, "expansion", f.delta_arr * e.share
    if isinstance(f, UsageReported):
        return f.currency, "usage", f.revenue * e.share
    return None
