"""The plan explainer and the change log: pure core, figures from the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trailpay.core.explainer import ExplainerError, explain
from trailpay.core.plan_changes import diff, terms_for
from trailpay.core.plans import parse_plan

DEMO = Path(__file__).resolve().parents[2] / "services" / "demo_data" / "plan.yaml"


def demo(**changes) -> dict:
    doc = yaml.safe_load(DEMO.read_text())
    doc.update(changes)
    return doc


def with_rule(doc: dict, rule_id: str, **fields) -> dict:
    doc = dict(doc, rules=[dict(r, **fields) if r["id"] == rule_id else r for r in doc["rules"]])
    return doc


def term(ex, key):
    return next(t for t in ex.terms if t.key == key)


def test_upfront_example_is_the_engines_posting():
    ex = explain(parse_plan(demo()))
    anchor = term(ex, "anchor")
    first = anchor.examples[0]
    # 20% of 100,000.00 = 20,000.00; half held until onboarding (design §3's example plan).
    assert first.figures == {"earned": "20,000.00", "held": "10,000.00"}
    assert "20,000.00 USD upfront, 10,000.00 USD of it held until onboarding completed" in \
        first.outcome
    assert first.lines == ("20% of ACV 100,000.00 USD, your share 100%: 20,000.00; 50% "
                           "(10,000.00) held until onboarding completed, by 2026-04-01",)
    capped = anchor.examples[1]  # the cap binds: 20% of 250,000.00 is 50,000.00, at most 25,000
    assert capped.figures["earned"] == "25,000.00"
    released, forfeited = anchor.examples[2:]
    assert released.figures == {"released": "10,000.00"}
    assert forfeited.figures == {"forfeited": "10,000.00"}


def test_a_changed_rate_changes_the_figures():
    before = term(explain(parse_plan(demo())), "anchor").examples[0].figures
    after = term(explain(parse_plan(with_rule(demo(), "anchor", rate="0.15"))),
                 "anchor").examples[0].figures
    assert before["earned"] == "20,000.00" and after["earned"] == "15,000.00"
    assert after["held"] == "7,500.00"


def test_every_rule_kind_has_engine_examples():
    ex = explain(parse_plan(demo()))
    kinds = {t.kind for t in ex.terms}
    assert kinds == {"upfront", "recurring", "expansion", "usage", "milestone", "referral",
                     "comarketing", "volume_tiers", "clawback", "payout"}
    figures = {t.key: [e.figures.get("earned") for e in t.examples] for t in ex.terms}
    assert figures["trail"] == ["5,000.00", "7,000.00", "10,000.00", "10,000.00"]
    assert figures["grow"] == ["2,000.00"]
    assert figures["usage"] == ["300.00"]
    assert figures["onboarded"] == ["500.00"]
    assert figures["refer"] == ["200.00"]
    assert figures["mdf"] == ["3,000.00", "2,000.00"]  # the quarter's cap of 5,000.00 binds
    assert figures["volume"] == ["1,000.00", "1,200.00"]  # ×1 below 500,000, ×1.2 from it
    clawback = term(ex, "clawback").examples[0]
    # 89 days in, 2 whole months served of 12: 10/12 of 20,000.00.
    assert clawback.figures == {"earned": "20,000.00", "clawed_back": "16,666.67"}
    assert all(e.lines for t in ex.terms if t.kind != "payout" for e in t.examples)


def test_partner_types_see_their_terms():
    doc = demo()
    doc["rules"] = [*doc["rules"], {"id": "int-bonus", "kind": "referral", "amount": "50.00",
                                    "partner_types": ["integrator"]}]
    plan = parse_plan(doc)
    assert "int-bonus" not in {t.key for t in explain(plan, "reseller").terms}
    assert "int-bonus" in {t.key for t in explain(plan, "integrator").terms}
    everyone = explain(plan)
    assert term(everyone, "int-bonus").applies_to == ("integrator",)
    with pytest.raises(ExplainerError, match="no terms for partner type 'referral'"):
        explain(plan, "referral")


def test_a_refused_example_says_why():
    # A milestone amount only in EUR: the example is made in EUR, but the deal that sets it
    # up is refused (the upfront cap is defined in USD only); the example says so.
    doc = with_rule(demo(), "onboarded", amount={"EUR": "450.00"})
    example = term(explain(parse_plan(doc)), "onboarded").examples[0]
    assert example.figures == {}
    assert example.outcome == ("the engine refuses this: deal.closed of the example: rule "
                               "anchor: cap is not defined in EUR (defined in USD); trailpay "
                               "never converts money")
    doc = with_rule(doc, "anchor", cap={"USD": "25000.00", "EUR": "23000.00"})
    example = term(explain(parse_plan(doc)), "onboarded").examples[0]
    assert example.figures == {"earned": "450.00"} and "EUR" in example.outcome


def test_diff_names_every_change():
    old = parse_plan(demo())
    doc = with_rule(demo(version=2, effective_from="2026-07-01"), "anchor", rate="0.15",
                    cap="20000.00")
    doc["rules"] = [r for r in doc["rules"] if r["id"] != "usage"] + [
        {"id": "happy", "kind": "milestone", "milestone": "csat_scored", "min_score": 9,
         "amount": "250.00"}]
    doc["rules"] = [dict(r, tiers=[{"from": "0", "multiplier": "1.0"},
                                   {"from": "400000", "multiplier": "1.25"}])
                    if r["id"] == "volume" else r for r in doc["rules"]]
    doc["payout"] = {"minimum": "200.00", "hold_days": 45, "cadence": "monthly"}
    doc["clawback"] = {"window_days": 90, "mode": "pro_rata"}
    changes = diff(old, parse_plan(doc))
    got = {(c.what, c.field): (c.before, c.after) for c in changes}
    assert got == {
        ("rate", "rules.anchor.rate"): ("20%", "15%"),
        ("cap", "rules.anchor.cap"): ("25,000.00 USD", "20,000.00 USD"),
        ("tiers", "rules.volume.tiers"): ("from 0 ×1, from 500000 ×1.2",
                                          "from 0 ×1, from 400000 ×1.25"),
        ("rule_added", "rules.happy"): (None, "milestone, milestone csat_scored, min score 9, "
                                              "amount 250.00 USD"),
        ("rule_removed", "rules.usage"): ("usage, rate 3%", None),
        ("clawback", "clawback.window_days"): ("180", "90"),
        ("payout", "payout.minimum"): ("100.00 USD", "200.00 USD"),
        ("payout", "payout.hold_days"): ("30", "45"),
    }
    assert "Rule anchor: rate changed from 20% to 15%" in [c.sentence for c in changes]
    assert diff(old, old) == []


def test_terms_for_a_type_hide_other_types_changes():
    old = parse_plan(demo())
    doc = demo(version=2)
    doc["rules"] = [*doc["rules"], {"id": "int-bonus", "kind": "referral", "amount": "50.00",
                                    "partner_types": ["integrator"]}]
    new = parse_plan(doc)
    assert [c.rule_id for c in diff(old, new)] == ["int-bonus"]
    assert diff(terms_for(old, "reseller"), terms_for(new, "reseller")) == []
