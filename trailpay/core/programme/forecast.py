"""A partner's expected commissions, month by month, from its state and the plan engine.

Nothing here knows a rate. The coming renewals of the partner's active customers (at
start_date + k × term_months, with the customer's current ARR) and a usage run-rate (the
last three months' usage revenue per customer, once a month, on the 15th) are made into
hypothetical ledger entries and folded through `core.fold.attempt` on a copy of the
partner's state, in date order: tenure years, volume multipliers, caps and overrides
are the engine's, so the forecast and live accrual cannot disagree on a rule. What the
state already holds adds to it: pending money maturing on its date, held money reaching
its vesting deadline (released if a milestone comes in time, otherwise forfeited).

Each amount appears once, in the month the event that moves it happens. The band comes
from churn: a customer still a customer m months ahead with probability
s = (1 − annual churn)^(m/12); expected = Σ amount × s; low/high = expected ∓ 1.96 σ
(σ² = Σ amount² s (1 − s), customers churning independently), bounded by 0 and by the
full amounts. Pending money is certain; held money counts s × held in expected, nothing
in low (forfeited), all of it in high (released).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from trailpay.core.facts import SubscriptionRenewed, UsageReported
from trailpay.core.fold import Books, attempt, terms_of
from trailpay.core.journal import LedgerEntry
from trailpay.core.money import round_money
from trailpay.core.postings import COMPANY_ACCOUNT
from trailpay.core.programme.metrics import DAYS_PER_MONTH, months_between
from trailpay.core.state import PartnerState

ZERO, ONE = Decimal(0), Decimal(1)
Z = Decimal("1.959963984540054")
SOURCE = "trailpay.forecast"
# Hypothetical entries sort after every journaled one, so the books know every version.
SEQ = 2 ** 62
USAGE_DAYS = 91  # the run-rate looks back about three months
COMPONENTS = ("recurring", "usage", "maturing", "held")


def add_months(d: date, n: int) -> date:
    """The same day n months later (the month's last day when it has fewer days)."""
    y, m = divmod(d.month - 1 + n, 12)
    first = date(d.year + y, m + 1, 1)
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return min(first.replace(day=1) + timedelta(days=d.day - 1), nxt - timedelta(days=1))


def survival(churn_rate: Decimal, as_of: date, on: date) -> Decimal:
    """The chance a customer is still one on `on`, at this annual churn rate."""
    months = Decimal((on - as_of).days) / DAYS_PER_MONTH
    keep = ONE - churn_rate
    if keep <= 0:
        return ZERO
    return (keep.ln() * months / 12).exp()


@dataclass(frozen=True, slots=True)
class Projected:
    """A hypothetical fact the engine was asked about, and the commission it gave."""

    kind: str  # recurring (a renewal) | usage
    customer_id: str
    on: date
    currency: str
    base: Decimal  # the ARR renewed, or the usage revenue
    commission: Decimal
    survival: Decimal
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeldDue:
    customer_id: str
    deadline: date
    currency: str
    held: Decimal
    release_on: tuple[str, ...]
    survival: Decimal


@dataclass(slots=True)
class Month:
    month: str  # YYYY-MM
    currency: str
    components: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, ZERO))
    low: Decimal = ZERO
    expected: Decimal = ZERO
    high: Decimal = ZERO


@dataclass(slots=True)
class Forecast:
    partner_id: str
    as_of: date
    churn_rate: Decimal
    months: list[Month]
    projected: list[Projected]
    held: list[HeldDue]
    maturing: list[tuple[date, str, Decimal]]  # (day, currency, amount)
    refused: list[tuple[str, str]]  # (what was asked, the engine's reason)
    horizon: int = 0  # calendar months, from as_of's


def _entry(partner_id: str, name: str, on: date, customer_id: str, deal_id: str,
           share: Decimal, fact: object) -> LedgerEntry:
    return LedgerEntry(f"{SEQ}:{partner_id}:{name}", SEQ, name, SOURCE,
                       datetime.combine(on, time(12), tzinfo=UTC), partner_id, customer_id,
                       deal_id, share, "sourced", fact)  # type: ignore[arg-type]


def usage_rates(entries: Iterable[LedgerEntry], as_of: date) -> dict[tuple[str, str], Decimal]:
    """(customer, currency) -> monthly usage revenue (the whole customer's), from the usage
    facts dated in the USAGE_DAYS before as_of."""
    since = as_of - timedelta(days=USAGE_DAYS)
    out: dict[tuple[str, str], Decimal] = {}
    for e in entries:
        f = e.fact
        if isinstance(f, UsageReported) and since < e.time.astimezone(UTC).date() <= as_of:
            key = (f.customer_id, f.currency)
            out[key] = out.get(key, ZERO) + f.revenue
    return {k: v * 30 / USAGE_DAYS for k, v in out.items()}


def _wanted(state: PartnerState, as_of: date, end: date, usage: dict[tuple[str, str], Decimal],
            renewed: set[tuple[str, date]]) -> list[tuple[date, str, LedgerEntry]]:
    out: list[tuple[date, str, LedgerEntry]] = []
    p = state.partner_id
    for cid, b in sorted(state.customers.items()):
        if not b.active:
            continue
        k = 1
        while b.term_months > 0:
            on = add_months(b.start_date, k * b.term_months)
            k += 1
            if on >= end:
                break
            if on <= as_of or (cid, on) in renewed:
                continue
            fact = SubscriptionRenewed(cid, b.deal_id, b.currency, b.arr, on,
                                       add_months(on, b.term_months) - timedelta(days=1))
            out.append((on, "recurring", _entry(p, f"renewal:{cid}:{on}", on, cid, b.deal_id,
                                                b.share, fact)))
        for (ucid, cur), monthly in usage.items():
            if ucid != cid or not monthly:
                continue
            for first, _ in months_between(as_of, end):
                on = date(first.year, first.month, 15)
                if as_of < on < end:
                    fact = UsageReported(cid, cur, "run-rate", ONE, monthly,
                                         date(on.year, on.month, 1), on)
                    out.append((on, "usage", _entry(p, f"usage:{cid}:{cur}:{on}", on, cid,
                                                    b.deal_id, b.share, fact)))
    out.sort(key=lambda t: (t[0], t[1], t[2].event_id))
    return out


def forecast(state: PartnerState, books: Books, as_of: date, months: int,
             churn_rate: Decimal, entries: Sequence[LedgerEntry] = ()) -> Forecast:
    """The partner's expected commissions for `months` calendar months from as_of's month.
    `state`: the partner's state folded through as_of; `entries`: its applied entries
    (for the usage run-rate and the renewals already recorded ahead of time)."""
    start = date(as_of.year, as_of.month, 1)
    end = add_months(start, months)
    renewed = {(e.customer_id or "", e.fact.period_start) for e in entries
               if isinstance(e.fact, SubscriptionRenewed)}
    out = Forecast(state.partner_id, as_of, churn_rate, [], [], [], [], [], months)
    current = state
    for on, kind, e in _wanted(state, as_of, end, usage_rates(entries, as_of), renewed):
        terms, why = terms_of(books, e)
        if why is None:
            current, groups, _, why = attempt(current, e, terms)
        if why is not None:
            out.refused.append((e.event_id, why))
            continue
        earned = ZERO
        rules: list[str] = []
        for g in groups:
            for leg in g.legs:
                if leg.account == COMPANY_ACCOUNT:
                    earned -= leg.amount.amount
                    rules.append(g.explanation.rule_id)
        f = e.fact
        base = f.arr if isinstance(f, SubscriptionRenewed) else f.revenue  # type: ignore[union-attr]
        cur = f.currency  # type: ignore[attr-defined]
        out.projected.append(Projected(kind, e.customer_id or "", on, cur, base, earned,
                                       survival(churn_rate, as_of, on), tuple(rules)))
    for cur, lots in sorted(state.pending.items()):
        for due, amount in sorted(lots.items()):
            if as_of < due < end and amount:
                out.maturing.append((due, cur, amount))
    for cid, b in sorted(state.customers.items()):
        if b.held and b.vest_deadline is not None and as_of <= b.vest_deadline < end:
            out.held.append(HeldDue(cid, b.vest_deadline, b.currency, b.held, b.release_on,
                                    survival(churn_rate, as_of, b.vest_deadline)))
    out.months = _band(out, start, end)
    return out


def _band(f: Forecast, start: date, end: date) -> list[Month]:
    cells: dict[tuple[str, str], Month] = {}
    var: dict[tuple[str, str], Decimal] = {}
    full: dict[tuple[str, str], Decimal] = {}
    currencies = sorted({p.currency for p in f.projected} | {c for _, c, _ in f.maturing}
                        | {h.currency for h in f.held})

    def cell(on: date, cur: str) -> tuple[Month, tuple[str, str]]:
        key = (on.strftime("%Y-%m"), cur)
        return cells[key], key

    for first, _ in months_between(start, end):
        for cur in currencies:
            cells[(first.strftime("%Y-%m"), cur)] = Month(first.strftime("%Y-%m"), cur)
    for p in f.projected:
        m, key = cell(p.on, p.currency)
        m.components[p.kind] += p.commission
        m.expected += p.commission * p.survival
        var[key] = var.get(key, ZERO) + p.commission ** 2 * p.survival * (1 - p.survival)
        full[key] = full.get(key, ZERO) + p.commission
    for key, m in cells.items():  # the projected part's band, before the certain parts
        sd = var.get(key, ZERO).sqrt()
        m.low = max(ZERO, m.expected - Z * sd)
        m.high = min(full.get(key, ZERO), m.expected + Z * sd)
    for on, cur, amount in f.maturing:
        m, _ = cell(on, cur)
        m.components["maturing"] += amount
        m.low += amount
        m.expected += amount
        m.high += amount
    for h in f.held:
        m, _ = cell(h.deadline, h.currency)
        m.components["held"] += h.held
        m.expected += h.held * h.survival
        m.high += h.held
    for m in cells.values():
        m.low, m.expected, m.high = (round_money(v, m.currency)
                                     for v in (m.low, m.expected, m.high))
        m.components = {k: round_money(v, m.currency) for k, v in m.components.items()}
    return [cells[k] for k in sorted(cells)]
