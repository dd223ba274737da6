"""Attribution to partners, entry round trips, and the journal hash chain (pure)."""

from datetime import UTC, date, datetime
from decimal import Decimal

from trailpay.core.attribution import (
    customer_after, entries_for, entry_from_dict, entry_to_dict, partners_of,
)
from trailpay.core.facts import DealClosed, PartnerShare, ReferralQualified, SubscriptionChurned
from trailpay.core.journal import GENESIS, chain_hash, verify_chain

SHARES = (PartnerShare("P1", "sourced", Decimal("0.6")), PartnerShare("P2", "implemented", Decimal("0.4")))
DEAL = DealClosed("D1", "C1", "new", "USD", Decimal("100000"), Decimal("300000"), 36,
                  date(2026, 1, 1), SHARES)
CHURN = SubscriptionChurned("C1", date(2026, 3, 1), "budget")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_customer_facts_follow_the_deal_partners_or_park():
    assert partners_of(CHURN, None) is None  # parked until the deal arrives
    customer = customer_after(DEAL, None)
    assert partners_of(CHURN, customer) == SHARES
    assert partners_of(ReferralQualified("P9", "L1"), None)[0].partner_id == "P9"


def test_entries_split_by_partner_and_round_trip():
    entries = entries_for(7, "e1", "crm", AT, DEAL, SHARES, None)
    assert [e.entry_id for e in entries] == ["7:P1", "7:P2"]
    assert [e.share for e in entries] == [Decimal("0.6"), Decimal("0.4")]
    for e in entries:
        assert entry_from_dict(entry_to_dict(e)) == e


def test_hash_chain_detects_a_changed_row():
    rows, prev = [], GENESIS
    for pos, h in enumerate(["a" * 64, "b" * 64, "c" * 64], start=1):
        row_hash = chain_hash(prev, "s", pos, h)
        rows.append((pos, h, prev, row_hash))
        prev = row_hash
    assert verify_chain(rows, "s") is None
    rows[1] = (2, "d" * 64, rows[1][2], rows[1][3])
    assert verify_chain(rows, "s") == 2
    assert verify_chain(rows[:1] + rows[2:], "s") == 3  # a deleted row breaks the chain too
