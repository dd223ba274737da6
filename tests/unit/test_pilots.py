"""A pilot's hash split is deterministic and stable when partners are added (issue 16)."""

from __future__ import annotations

from trailpay.core.pilots import CONTROL, TREATMENT, arm, arms, uniform


def test_the_hash_split_is_deterministic_and_near_its_ratio():
    partners = [(f"P-{i:04d}", "reseller") for i in range(2_000)]
    a = arms("pilot-1", partners, {"hash": {"ratio": "0.3"}})
    assert a == arms("pilot-1", list(reversed(partners)), {"hash": {"ratio": "0.3"}})
    share = sum(v == TREATMENT for v in a.values()) / len(a)
    assert 0.27 < share < 0.33
    assert a != arms("pilot-2", partners, {"hash": {"ratio": "0.3"}})  # pilots split apart
    assert all(0 <= uniform("pilot-1", p) < 1 for p, _ in partners[:50])


def test_adding_partners_moves_nobody():
    before = arms("pilot-1", [(f"P-{i}", "reseller") for i in range(500)], {"hash": {"ratio": "0.5"}})
    after = arms("pilot-1", [(f"P-{i}", "reseller") for i in range(1_500)], {"hash": {"ratio": "0.5"}})
    assert {p: after[p] for p in before} == before


def test_lists_and_types_assign_as_named():
    assert arm("x", "P1", "reseller", {"partners": ["P1"]}) == TREATMENT
    assert arm("x", "P2", "reseller", {"partners": ["P1"]}) == CONTROL
    assert arm("x", "P2", "integrator", {"types": ["integrator"]}) == TREATMENT
