"""Money: half-even rounding to ISO 4217 minor units, exact allocation, no floats."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trailpay.core.money import Balances, Money, MoneyError, allocate, parse_decimal, round_money


@pytest.mark.parametrize(("amount", "currency", "expected"), [
    ("2.345", "USD", "2.34"), ("2.355", "USD", "2.36"), ("-2.345", "USD", "-2.34"),
    ("1500.5", "JPY", "1500"), ("1501.5", "JPY", "1502"),
    ("1.2345", "KWD", "1.234"), ("1.2355", "KWD", "1.236"),
])
def test_rounding_is_half_even_to_the_minor_unit(amount, currency, expected):
    assert round_money(Decimal(amount), currency) == Decimal(expected)
    assert Money.of(amount, currency).format() == expected


def test_floats_and_unknown_currencies_are_refused():
    with pytest.raises(MoneyError):
        parse_decimal(1.5)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money.of("1", "XXX")
    with pytest.raises(MoneyError):
        Money.of("1", "USD") + Money.of("1", "EUR")


@given(cents=st.integers(min_value=-10**9, max_value=10**9),
       shares=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=7))
def test_allocate_keeps_the_total_exactly(cents, shares):
    total = Money(Decimal(cents) / 100, "USD")
    parts = allocate(total, [Decimal(s) for s in shares])
    assert sum((p.amount for p in parts), Decimal(0)) == total.amount
    assert all(p.amount == round_money(p.amount, "USD") for p in parts)
    exact = [total.amount * s / sum(shares) for s in shares]
    assert all(abs(p.amount - e) < Decimal("0.01") for p, e in zip(parts, exact, strict=True))


def test_balances_never_add_across_currencies():
    b = Balances([("USD", "payable", Decimal("1.00")), ("EUR", "payable", Decimal("2.00")),
                  ("USD", "payable", Decimal("3.00"))])
    assert b.get("USD", "payable") == Decimal("4.00") and b.get("EUR", "payable") == Decimal("2.00")
    assert b.currencies() == ["EUR", "USD"]
