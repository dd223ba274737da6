"""First checks of the engine on the design's example plan (hand-computed)."""

from decimal import Decimal as D

from tests.kit import Ledger, deal, fact, plan

REF = [
    {"id": "anchor", "kind": "upfront", "base": "acv", "rate": "0.20", "cap": "25000.00",
     "vesting": {"held_pct": "0.50", "release_on": ["onboarding_completed"], "within_days": 90}},
]


def test_upfront_split_capped_and_held():
    led = Ledger([plan(REF)])
    # 20% of 200,000.00 = 40,000.00, capped at 25,000.00; share 60% = 15,000.00; half held.
    g = led.apply(deal(acv="200000.00", partners=[("P1", "0.6"), ("P2", "0.4")]), "2026-01-01",
                  share="0.6")
    assert len(g) == 1
    assert led.balances(as_of="2026-01-02") == {"held": D("7500.00"), "pending": D("7500.00")}
    assert "capped at 25,000.00" in g[0].explanation.sentence
    assert "your share 60%: 15,000.00" in g[0].explanation.sentence
    led.apply(fact("milestone.achieved", customer_id="C1", milestone="onboarding_completed"),
              "2026-02-01", share="0.6")
    assert led.balances(as_of="2026-02-01") == {"payable": D("15000.00")}
