"""Compensation plans: immutable, versioned documents the engine reads.

The JSON Schema (schemas/plan.json) checks the shape at the door; `parse_plan`
checks what a schema cannot (rates within [0, 1], tiers ascending, known
currencies) and names the JSON path of whatever is wrong, so partner ops can
fix a plan without reading code. A `PlanBook` answers "which version was in
force on this date"; an `Enrollment` carries a partner's type and overrides.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from trailpay.core.money import MINOR_UNITS, MoneyError, parse_decimal

RULE_KINDS = ("upfront", "recurring", "expansion", "usage", "milestone", "referral",
              "comarketing", "volume_tiers")
# Which rule fields a per-partner override may replace.
OVERRIDABLE = ("rate", "cap", "amount", "match_rate", "cap_per_quarter")


class PlanError(ValueError):
    """A plan document (or an override) is not usable; `path` names the culprit."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why
        self.reason = f"{path}: {why}"


@dataclass(frozen=True, slots=True)
class Amounts:
    """A flat amount or cap: one per currency ("200.00" means the plan's currency)."""

    by_currency: Mapping[str, Decimal]

    def get(self, currency: str) -> Decimal | None:
        return self.by_currency.get(currency)


@dataclass(frozen=True, slots=True)
class Vesting:
    held_pct: Decimal
    release_on: tuple[str, ...]
    within_days: int


@dataclass(frozen=True, slots=True)
class Tier:
    start: Decimal  # "from" in the document
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a plan. Fields a kind does not use stay None."""

    id: str
    kind: str
    partner_types: tuple[str, ...] = ()  # empty: the rule applies to every type
    base: str | None = None  # upfront: acv | tcv
    rate: Decimal | None = None
    cap: Amounts | None = None
    vesting: Vesting | None = None
    rates_by_year: tuple[tuple[int, Decimal], ...] = ()
    milestone: str | None = None
    min_score: Decimal | None = None
    amount: Amounts | None = None
    match_rate: Decimal | None = None
    cap_per_quarter: Amounts | None = None
    tiers: tuple[Tier, ...] = ()

    def applies_to(self, partner_type: str) -> bool:
        return not self.partner_types or partner_type in self.partner_types

    def rate_for_year(self, year: int) -> Decimal:
        """rates_by_year: the rate of the latest year at or below `year` (last applies beyond)."""
        best: Decimal | None = None
        for y, r in self.rates_by_year:
            if y <= year:
                best = r
        return best if best is not None else Decimal(0)

    def multiplier_at(self, volume: Decimal) -> Decimal:
        m = Decimal(1)
        for t in self.tiers:
            if volume >= t.start:
                m = t.multiplier
        return m


@dataclass(frozen=True, slots=True)
class Clawback:
    window_days: int
    mode: str  # full | pro_rata


@dataclass(frozen=True, slots=True)
class PayoutTerms:
    minimum: Amounts
    hold_days: int
    cadence: str


@dataclass(frozen=True, slots=True)
class PlanVersion:
    plan_id: str
    version: int
    effective_from: date
    currency: str
    partner_types: tuple[str, ...]
    rules: tuple[Rule, ...]
    clawback: Clawback
    payout: PayoutTerms

    def rules_of(self, kind: str, partner_type: str) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind and r.applies_to(partner_type)]


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A partner's enrolment: its type, its plan, and per-rule overrides."""

    partner_id: str
    type: str
    plan_id: str
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Enrolled:
    """An enrolment, the journal seq that recorded it, and when it took effect (None: the
    partner's first enrolment, which covers everything before it too)."""

    journal_seq: int
    enrollment: Enrollment
    since: datetime | None = None


def enrollment_at(history: Sequence[Enrolled], when: datetime) -> Enrollment:
    """The enrolment in force at an entry's event time (design §4: enrolments follow the
    same order as facts): the last one (in journal order) in effect by then."""
    for h in reversed(history):  # called once per entry: no list built
        if h.since is None or h.since <= when:
            return h.enrollment
    raise LookupError("the partner is not enrolled")


class Books:
    """Every plan's versions and every partner's enrolments: what an entry is accrued with.

    A version applies to every fact dated in its effective period (design §4). It is known
    to the entries journaled after it; entries journaled before it and dated in its period
    are re-rated when the version is published with `retroactive: true` (a plan.rerated
    command per partner folds its history again, with `seen` that command's journal seq).
    """

    __slots__ = ("plans", "enrollments")

    def __init__(self, plans: Mapping[str, PlanHistory],
                 enrollments: Mapping[str, Sequence[Enrolled]]) -> None:
        self.plans = plans
        self.enrollments = enrollments

    def __call__(self, e: Any, seen: int = 0) -> tuple[PlanBook, Enrollment]:
        """The book and enrolment for entry `e`, knowing the versions journaled before it,
        or before `seen` when that is later (an entry folded again)."""
        enrollment = enrollment_at(self.enrollments.get(e.partner_id, ()), e.time)
        history = self.plans.get(enrollment.plan_id)
        if history is None:
            raise LookupError(f"plan {enrollment.plan_id!r} has no published version")
        return history.book_before(max(e.journal_seq, seen)), enrollment


class PlanBook:
    """All published versions of one plan; picks the one in force on a date."""

    __slots__ = ("_versions",)

    def __init__(self, versions: Sequence[PlanVersion]) -> None:
        self._versions = sorted(versions, key=lambda p: (p.effective_from, p.version))

    def in_force(self, on: date) -> PlanVersion:
        current = None
        for p in self._versions:
            if p.effective_from <= on:
                current = p
        if current is None:
            first = self._versions[0] if self._versions else None
            raise PlanError("effective_from", f"no version of plan "
                            f"{first.plan_id if first else '?'} was in force on {on}")
        return current


class PlanHistory:
    """One plan's published versions in journal order. The book of the versions journaled
    before a seq depends only on how many that is: books are made once per count."""

    __slots__ = ("plan_id", "_seqs", "_versions", "_books")

    def __init__(self, plan_id: str, versions: Iterable[tuple[int, PlanVersion]] = ()) -> None:
        self.plan_id = plan_id
        self._seqs: list[int] = []
        self._versions: list[PlanVersion] = []
        self._books: dict[int, PlanBook] = {}
        for seq, version in versions:
            self.add(seq, version)

    def add(self, journal_seq: int, version: PlanVersion) -> None:
        n = bisect_right(self._seqs, journal_seq)
        self._seqs.insert(n, journal_seq)
        self._versions.insert(n, version)
        self._books.clear()

    def book_before(self, journal_seq: int) -> PlanBook:
        """The book of the versions journaled before this seq; LookupError if none was."""
        n = bisect_left(self._seqs, journal_seq)
        if not n:
            raise LookupError(f"plan {self.plan_id!r} had no published version for this event")
        book = self._books.get(n)
        if book is None:
            book = self._books[n] = PlanBook(self._versions[:n])
        return book


# --- parsing -------------------------------------------------------------------------------


def _dec(value: Any, path: str, *, lo: Decimal | None = None, hi: Decimal | None = None) -> Decimal:
    if isinstance(value, float):
        raise PlanError(path, "must be a decimal string such as \"0.20\", not a float")
    try:
        d = parse_decimal(value)
    except MoneyError as exc:
        raise PlanError(path, str(exc)) from None
    if lo is not None and d < lo:
        raise PlanError(path, f"must be at least {lo}, got {d}")
    if hi is not None and d > hi:
        raise PlanError(path, f"must be at most {hi}, got {d}")
    return d


def _rate(value: Any, path: str) -> Decimal:
    return _dec(value, path, lo=Decimal(0), hi=Decimal(1))


def _currency(value: Any, path: str) -> str:
    if value not in MINOR_UNITS:
        raise PlanError(path, f"unknown ISO 4217 currency {value!r}")
    return value


def _amounts(value: Any, path: str, plan_currency: str) -> Amounts:
    if isinstance(value, Mapping):
        if not value:
            raise PlanError(path, "needs at least one currency")
        return Amounts({_currency(c, f"{path}.{c}"): _dec(v, f"{path}.{c}", lo=Decimal(0))
                        for c, v in value.items()})
    return Amounts({plan_currency: _dec(value, path, lo=Decimal(0))})


def _int(value: Any, path: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise PlanError(path, f"must be a whole number ≥ {lo}")
    return value


def _require(doc: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in doc:
        raise PlanError(f"{path}.{key}" if path else key, "is required")
    return doc[key]


def _rule(doc: Mapping[str, Any], path: str, currency: str) -> Rule:
    rid = _require(doc, "id", path)
    kind = _require(doc, "kind", path)
    if kind not in RULE_KINDS:
        raise PlanError(f"{path}.kind", f"unknown rule kind {kind!r}; one of {', '.join(RULE_KINDS)}")
    types = tuple(doc.get("partner_types") or ())
    rule = Rule(id=str(rid), kind=kind, partner_types=types)
    need = lambda key: _require(doc, key, path)  # noqa: E731
    if kind == "upfront":
        base = need("base")
        if base not in ("acv", "tcv"):
            raise PlanError(f"{path}.base", f"must be acv or tcv, got {base!r}")
        vesting = None
        if doc.get("vesting") is not None:
            v, vp = doc["vesting"], f"{path}.vesting"
            release = tuple(_require(v, "release_on", vp))
            if not release:
                raise PlanError(f"{vp}.release_on", "needs at least one milestone")
            vesting = Vesting(_rate(_require(v, "held_pct", vp), f"{vp}.held_pct"), release,
                              _int(_require(v, "within_days", vp), f"{vp}.within_days", 1))
        rule = replace(rule, base=base, rate=_rate(need("rate"), f"{path}.rate"),
                       cap=_amounts(doc["cap"], f"{path}.cap", currency) if "cap" in doc else None,
                       vesting=vesting)
    elif kind == "recurring":
        years = need("rates_by_year")
        if not isinstance(years, Mapping) or not years:
            raise PlanError(f"{path}.rates_by_year", "must map tenure years to rates")
        pairs = []
        for y, r in years.items():
            try:
                year = int(y)
            except ValueError:
                raise PlanError(f"{path}.rates_by_year", f"{y!r} is not a year number") from None
            if year < 1:
                raise PlanError(f"{path}.rates_by_year.{y}", "tenure years start at 1")
            pairs.append((year, _rate(r, f"{path}.rates_by_year.{y}")))
        rule = replace(rule, rates_by_year=tuple(sorted(pairs)))
    elif kind in ("expansion", "usage"):
        rule = replace(rule, rate=_rate(need("rate"), f"{path}.rate"))
    elif kind == "milestone":
        rule = replace(rule, milestone=str(need("milestone")),
                       amount=_amounts(need("amount"), f"{path}.amount", currency),
                       min_score=_dec(doc["min_score"], f"{path}.min_score")
                       if doc.get("min_score") is not None else None)
    elif kind == "referral":
        rule = replace(rule, amount=_amounts(need("amount"), f"{path}.amount", currency))
    elif kind == "comarketing":
        rule = replace(rule, match_rate=_rate(need("match_rate"), f"{path}.match_rate"),
                       cap_per_quarter=_amounts(doc["cap_per_quarter"], f"{path}.cap_per_quarter",
                                                currency) if "cap_per_quarter" in doc else None)
    elif kind == "volume_tiers":
        raw = need("tiers")
        if not raw:
            raise PlanError(f"{path}.tiers", "needs at least one tier")
        tiers = []
        for i, t in enumerate(raw):
            tp = f"{path}.tiers[{i}]"
            tier = Tier(_dec(_require(t, "from", tp), f"{tp}.from", lo=Decimal(0)),
                        _dec(_require(t, "multiplier", tp), f"{tp}.multiplier", lo=Decimal(0)))
            if tiers and tier.start <= tiers[-1].start:
                raise PlanError(f"{tp}.from", "tiers must be in ascending order of `from`")
            tiers.append(tier)
        rule = replace(rule, tiers=tuple(tiers))
    return rule


def parse_plan(doc: Mapping[str, Any]) -> PlanVersion:
    """A plan document (already schema-checked, or not) to a PlanVersion; PlanError names the path."""
    plan_id = _require(doc, "plan_id", "")
    version = _int(_require(doc, "version", ""), "version", 1)
    try:
        effective_from = date.fromisoformat(str(_require(doc, "effective_from", "")))
    except ValueError:
        raise PlanError("effective_from", "must be an ISO date (YYYY-MM-DD)") from None
    currency = _currency(_require(doc, "currency", ""), "currency")
    rules_doc = _require(doc, "rules", "")
    rules = tuple(_rule(r, f"rules[{i}]", currency) for i, r in enumerate(rules_doc))
    ids = [r.id for r in rules]
    dup = next((i for i, r in enumerate(ids) if ids.index(r) != i), None)
    if dup is not None:
        raise PlanError(f"rules[{dup}].id", f"rule id {ids[dup]!r} is used twice")
    if sum(1 for r in rules if r.kind == "volume_tiers") > 1:
        raise PlanError("rules", "at most one volume_tiers rule per plan")
    cb = doc.get("clawback") or {"window_days": 0, "mode": "full"}
    mode = cb.get("mode", "full")
    if mode not in ("full", "pro_rata"):
        raise PlanError("clawback.mode", f"must be full or pro_rata, got {mode!r}")
    clawback = Clawback(_int(cb.get("window_days", 0), "clawback.window_days"), mode)
    po = _require(doc, "payout", "")
    payout = PayoutTerms(_amounts(_require(po, "minimum", "payout"), "payout.minimum", currency),
                         _int(po.get("hold_days", 0), "payout.hold_days"),
                         str(po.get("cadence", "monthly")))
    if payout.cadence not in ("monthly", "quarterly", "on_demand"):
        raise PlanError("payout.cadence", "must be monthly, quarterly or on_demand")
    return PlanVersion(str(plan_id), version, effective_from, currency,
                       tuple(doc.get("partner_types") or ()), rules, clawback, payout)


def with_overrides(rule: Rule, overrides: Mapping[str, Mapping[str, Any]],
                   currency: str) -> Rule:
    """The rule as it applies to one partner: overridden rate, cap or amount where given."""
    ov = overrides.get(rule.id)
    if not ov:
        return rule
    changes: dict[str, Any] = {}
    for key, value in ov.items():
        path = f"overrides.{rule.id}.{key}"
        if key not in OVERRIDABLE:
            raise PlanError(path, f"cannot be overridden; one of {', '.join(OVERRIDABLE)}")
        if key in ("rate", "match_rate"):
            changes[key] = _rate(value, path)
        else:
            changes[key] = _amounts(value, path, currency)
    return replace(rule, **changes)


def check_overrides(plan: PlanVersion, overrides: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse overrides that name no rule of the plan, or a field that cannot change."""
    ids = {r.id: r for r in plan.rules}
    for rule_id in overrides:
        if rule_id not in ids:
            raise PlanError(f"overrides.{rule_id}", f"plan {plan.plan_id} has no rule {rule_id!r}")
        with_overrides(ids[rule_id], overrides, plan.currency)
