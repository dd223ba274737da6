"""Posting legs go to PostgreSQL as COPY text: every value must come back exactly as the
core made it, whatever its text holds (tabs, newlines, backslashes) and however its
Decimals print (exponents, trailing zeros, negative zero)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailpay.adapters.posting_store import POSTING_COLUMNS, write as _write
from tests.integration.helpers import uid
from trailpay.adapters import journal_store
from trailpay.adapters.db import raw
from trailpay.adapters.journal_store import JournalRecord
from trailpay.core.money import Money
from trailpay.core.postings import COMPANY_ACCOUNT, make_explanation, make_group, make_leg

pytestmark = pytest.mark.integration

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=40)
_SPECIALS = st.sampled_from(["a\tb", "line\nbreak", "cr\rhere", "back\\slash", "\\N", "\\",
                             "tab\t\\n", "plain", "é ü 中 🙂", ""])
_FIGURE = st.one_of(
    st.none(),
    st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e12"),
                max_value=Decimal("1e12")),
    st.sampled_from([Decimal("0E-8"), Decimal("1E+3"), Decimal("-0"), Decimal("0.050000"),
                     Decimal("12345678901234.5678901234"), Decimal("1E-12")]))
_AMOUNT = st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e9"),
                      max_value=Decimal("1e9"), places=2)


@st.composite
def _group(draw, seq: int, n: int):
    amount = draw(_AMOUNT)
    split = draw(st.booleans())
    legs = [make_leg(COMPANY_ACCOUNT, "expense", Money(-amount, "USD"), None)]
    if split:
        half = (amount / 2).quantize(Decimal("0.01"))
        legs += [make_leg("partner:P\t1", "held", Money(half, "USD"), None),
                 make_leg("partner:P\t1", "pending", Money(amount - half, "USD"),
                          draw(st.dates(date(2020, 1, 1), date(2030, 12, 31))))]
    else:
        legs.append(make_leg("partner:P\t1", "pending", Money(amount, "USD"),
                             draw(st.one_of(st.none(), st.dates(date(2020, 1, 1)))), ))
    offset = timezone(timedelta(minutes=draw(st.integers(-720, 720))))
    at = draw(st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1))).replace(tzinfo=offset)
    x = make_explanation(draw(st.one_of(_SPECIALS, _TEXT)), "upfront",
                         draw(st.one_of(_SPECIALS, _TEXT)), draw(st.one_of(st.none(), _TEXT)),
                         draw(st.one_of(st.none(), st.integers(1, 2**31 - 1))),
                         draw(_FIGURE), draw(_FIGURE), draw(_FIGURE), draw(_FIGURE),
                         draw(_FIGURE))
    return make_group(f"g{n}\\{draw(_SPECIALS)}", draw(st.one_of(_SPECIALS, _TEXT)), seq,
                      draw(_TEXT), "deal.closed", at, "P\t1",
                      draw(st.one_of(st.none(), _SPECIALS)), draw(st.one_of(st.none(), _TEXT)),
                      x, tuple(legs))


def _rows(groups) -> list[tuple]:
    """The legs as POSTING_COLUMNS tuples, for asyncpg's binary COPY (the former path)."""
    rows = []
    for g in groups:
        x = g.explanation
        for n, leg in enumerate(g.legs):
            line = {
                "group_id": g.group_id, "leg": n, "entry_id": g.entry_id,
                "journal_seq": g.journal_seq, "event_id": g.event_id, "event_type": g.event_type,
                "effective_at": g.effective_at, "partner_id": g.partner_id,
                "customer_id": g.customer_id, "deal_id": g.deal_id, "account": leg.account,
                "bucket": leg.bucket, "currency": leg.amount.currency,
                "amount": leg.amount.amount, "available_on": leg.available_on,
                "rule_id": x.rule_id, "rule_kind": x.rule_kind, "plan_id": x.plan_id,
                "plan_version": x.plan_version, "base": x.base, "rate": x.rate,
                "multiplier": x.multiplier, "share": x.share, "unrounded": x.unrounded,
                "explanation": x.sentence}
            assert line.keys() == set(POSTING_COLUMNS)
            rows.append(tuple(line[c] for c in POSTING_COLUMNS))
    return sorted(rows, key=lambda r: (r[0], r[POSTING_COLUMNS.index("leg")]))


async def _stored(engine, groups, binary: bool) -> list[tuple]:
    """Write the groups (text COPY through `_write`, or binary), read them back, roll back."""
    async with engine.connect() as conn:
        await conn.begin()
        pg = await raw(conn)
        if binary:
            await pg.copy_records_to_table("postings", records=_rows(groups),
                                           columns=POSTING_COLUMNS)
        else:
            await _write(conn, groups)
        got = await pg.fetch(f"SELECT {', '.join(POSTING_COLUMNS)} FROM postings "
                             "WHERE group_id = ANY($1::text[]) ORDER BY group_id, leg",
                             [g.group_id for g in groups])
        await conn.rollback()
    return [tuple(r) for r in got]


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.integers(0, 2**32), min_size=1, max_size=30, unique=True).flatmap(
    lambda ns: st.tuples(*[_group(0, n) for n in ns])))
async def test_posting_legs_come_back_exactly_as_written(engine, drawn):
    async with engine.begin() as conn:
        seq = (await journal_store.append(conn, uid("stream"), [JournalRecord(
            "test.copy", uid("e"), "deal.closed", "C-1", datetime(2026, 1, 1, tzinfo=UTC),
            b'{"a":1}')])).appended[0].seq
    run = uid("run")
    groups = [replace(g, group_id=f"{run}:{g.group_id}", journal_seq=seq) for g in drawn]
    text_rows = await _stored(engine, groups, binary=False)
    assert text_rows == _rows(groups)  # every value, Decimals by value
    # ... and what PostgreSQL kept is what the binary COPY kept: scales, zeros, offsets
    binary_rows = await _stored(engine, groups, binary=True)
    assert [tuple(map(repr, r)) for r in text_rows] == [tuple(map(repr, r)) for r in binary_rows]
