"""The engine's fast paths (issue 6) agree with the plain ones they stand in for.

fact_from_data's direct path for dicts vs its general path (taken for any other Mapping);
frozen.maker/replacer vs the dataclass constructor and dataclasses.replace; the volume
index vs the full sum; copy-on-write states vs what they were copied from.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailpay.core.facts import FACT_TYPES, fact_from_data
from trailpay.core.frozen import maker, replacer
from trailpay.core.journal import LedgerEntry
from trailpay.core.postings import Explanation, Leg, PostingGroup, UnbalancedPosting, make_group
from trailpay.core.money import Money
from trailpay.core.state import CustomerBook, PartnerState, Payout, replace_book

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, width=16),
    st.sampled_from(["1200.50", "-3", "0.125", "1e3", "NaN", "x", "2026-02-30", "2026-03-01",
                     "USD", ""]),
    st.lists(st.fixed_dictionaries({"partner_id": st.just("P1"), "role": st.just("sourced"),
                                    "share": st.sampled_from(["1", "0.5", 1, "x"])}),
             max_size=2),
    st.lists(st.just({"partner_id": "P1"}), max_size=1),
)


def _outcome(event_type: str, data: Any) -> tuple[str, Any]:
    try:
        return "ok", fact_from_data(event_type, data)
    except Exception as exc:  # noqa: BLE001 - the exact exception is what is compared
        return type(exc).__name__, str(exc)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(FACT_TYPES)), st.data())
def test_fact_from_data_dicts_build_what_the_general_path_builds(event_type, draw):
    names = [f.name for f in dataclasses.fields(FACT_TYPES[event_type])]
    keys = draw.draw(st.lists(st.sampled_from([*names, "extra"]), unique=True))
    data = {k: draw.draw(VALUES) for k in keys}
    direct = _outcome(event_type, data)
    general = _outcome(event_type, MappingProxyType(data))
    assert direct == general
    if direct[0] == "ok":
        assert repr(direct[1]) == repr(general[1])


def _samples() -> list[tuple[type, dict[str, Any]]]:
    book = dict(customer_id="C1", deal_id="D1", currency="USD", share=Decimal("0.5"),
                start_date=date(2026, 1, 1), term_months=12, arr=Decimal("100.00"))
    entry = dict(entry_id="1:P1", journal_seq=1, event_id="e1", source="crm", time=None,
                 partner_id="P1", customer_id="C1", deal_id="D1", share=Decimal(1), role="sourced",
                 fact=None)
    return [(CustomerBook, book), (LedgerEntry, entry),
            (Money, dict(amount=Decimal("1.50"), currency="EUR")),
            (Leg, dict(account="a", bucket="held", amount=Money(Decimal(1), "USD"))),
            (Explanation, dict(rule_id="r", rule_kind="upfront", sentence="s", rate=Decimal("0.2")))]


@pytest.mark.parametrize(("cls", "kwargs"), _samples())
def test_maker_and_replacer_make_what_the_class_makes(cls, kwargs):
    made, plain = maker(cls)(**kwargs), cls(**kwargs)
    assert type(made) is cls
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(cls)[0].name, None)
    first = dataclasses.fields(cls)[0].name
    assert replacer(cls)(plain, **{first: "x"}) == dataclasses.replace(plain, **{first: "x"})


def test_make_group_checks_the_balance_like_the_class():
    legs = (Leg("a", "held", Money(Decimal("1.00"), "USD")),
            Leg("b", "held", Money(Decimal("-1.00"), "EUR")))
    args = ("g", "e", 1, "ev", "t", None, "P1", None, None, Explanation("r", "k", "s"))
    for bad in (legs, ()):
        with pytest.raises(UnbalancedPosting) as fast:
            make_group(*args, bad)
        with pytest.raises(UnbalancedPosting) as plain:
            PostingGroup(*args, bad)
        assert str(fast.value) == str(plain.value)


AMOUNTS = st.one_of(
    st.decimals(min_value=-10**6, max_value=10**9, places=2, allow_nan=False),
    st.sampled_from([Decimal("1E+30"), Decimal("0.0000000000000000000001"), Decimal("-0"),
                     Decimal("123456789012345678901234567.8"), Decimal("0.125")]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["C1", "C2", "C3", "C4"]), AMOUNTS,
                          st.sampled_from([Decimal(1), Decimal("0.3"), Decimal("0.70")]),
                          st.booleans(), st.sampled_from(["USD", "EUR"])), max_size=30))
def test_the_volume_index_equals_the_full_sum(changes):
    state = PartnerState("P1")
    for i, (cid, arr, share, active, cur) in enumerate(changes):
        state.put(CustomerBook(cid, "D", cur, share, date(2026, 1, 1), 12, arr, active=active))
        if i % 3 == 0:
            state = state.copy()
        for c in ("USD", "EUR"):
            value = state.volume_value(c)
            assert value == state.volume(c)
            assert value or not value.is_signed()  # never -0 (it would print as "-0.00")


def test_a_copy_changes_without_touching_its_original():
    a = PartnerState("P1")
    a.put(CustomerBook("C1", "D1", "USD", Decimal(1), date(2026, 1, 1), 12, Decimal(5),
                       held=Decimal(1), vest_deadline=date(2026, 3, 1)))
    a.add_pending("USD", date(2026, 2, 1), Decimal("3.00"))
    a.add_payable("USD", date(2026, 1, 5), Decimal("2.00"))
    before = repr(a)
    b = a.copy()
    b.put(replace_book(b.customers["C1"], held=Decimal(0)))
    b.add_pending("USD", date(2026, 2, 1), Decimal("1.00"))
    b.own_lots("USD").clear()
    b.add_payable("USD", date(2026, 1, 6), Decimal("1.00"))
    b.mature(date(2026, 3, 1))
    b.set_comarketing("2026Q1:USD:mdf", Decimal(1))
    b.set_payout(Payout("p", "USD", Decimal(1), "in_payout"))
    b.open_dispute("d", "g")
    b.forget_payable_changes(date(2026, 1, 5))
    assert repr(a) == before
    assert a.first_deadline() == date(2026, 3, 1) and b.first_deadline() is None
    a.add_pending("USD", date(2026, 1, 20), Decimal("1.00"))  # and the other way round
    assert date(2026, 1, 20) not in b.pending.get("USD", {})


def test_copy_sets_every_field_a_state_has():
    a = PartnerState("P1")
    b = a.copy()
    for f in dataclasses.fields(PartnerState):
        assert hasattr(b, f.name), f"PartnerState.copy() does not set {f.name}"
    assert b == a


def test_a_state_pickled_or_deep_copied_keeps_working():
    import copy
    import pickle

    a = PartnerState("P1")
    a.add_pending("USD", date(2026, 2, 1), Decimal("3.00"))
    a.put(CustomerBook("C1", "D1", "USD", Decimal(1), date(2026, 1, 1), 12, Decimal(5),
                       held=Decimal(1), vest_deadline=date(2026, 3, 1)))
    a.mature(date(2026, 1, 2))
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a)):
        assert b == a
        b.mature(date(2026, 2, 1))
        assert b.payable == {"USD": Decimal("3.00")} and b.first_deadline() == date(2026, 3, 1)
        assert a.pending == {"USD": {date(2026, 2, 1): Decimal("3.00")}}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 1_000), min_size=0, max_size=6, unique=True),
       st.lists(st.integers(0, 1_100), min_size=1, max_size=20))
def test_plan_history_books_match_the_versions_journaled_before(seqs, queries):
    """PlanHistory's cached books vs building the book from the versions before each seq."""
    from tests.kit import plan
    from trailpay.core.plans import PlanHistory

    versions = [(s, plan([], version=n + 1, effective_from=f"2026-01-{n + 1:02d}"))
                for n, s in enumerate(seqs)]
    history = PlanHistory("p")
    for s, v in reversed(versions):  # added out of order: the history sorts by seq
        history.add(s, v)
    for q in queries:
        before = sorted((v for s, v in versions if s < q),
                        key=lambda v: (v.effective_from, v.version))
        if not before:
            with pytest.raises(LookupError, match="no published version"):
                history.book_before(q)
            continue
        book = history.book_before(q)
        assert book._versions == before
        assert history.book_before(q) is book  # made once per count of versions
