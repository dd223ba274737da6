"""Facts: what CRM and billing tell trailpay happened, one frozen class per type.

JSON becomes a fact in the adapter, after schema validation against
schemas/events/<type>.json; the core only ever sees these classes. A unit test
keeps the field names here and the schemas in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, ClassVar, get_type_hints

from trailpay.core.frozen import maker
from trailpay.core.money import parse_decimal


class FactError(ValueError):
    """A payload does not make a valid fact; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class PartnerShare:
    partner_id: str
    role: str
    share: Decimal


@dataclass(frozen=True, slots=True)
class Fact:
    """Base of every fact. `type` is the CloudEvents type; `key` routes it on Kafka."""

    type: ClassVar[str] = ""
    partner_level: ClassVar[bool] = False

    def key(self) -> str:
        return getattr(self, "partner_id") if self.partner_level else getattr(self, "customer_id")


@dataclass(frozen=True, slots=True)
class DealClosed(Fact):
    type: ClassVar[str] = "deal.closed"
    deal_id: str
    customer_id: str
    kind: str
    currency: str
    acv: Decimal
    tcv: Decimal
    term_months: int
    start_date: date
    partners: tuple[PartnerShare, ...]


@dataclass(frozen=True, slots=True)
class SubscriptionRenewed(Fact):
    type: ClassVar[str] = "subscription.renewed"
    customer_id: str
    contract_id: str
    currency: str
    arr: Decimal
    period_start: date
    period_end: date


@dataclass(frozen=True, slots=True)
class SubscriptionExpanded(Fact):
    type: ClassVar[str] = "subscription.expanded"
    customer_id: str
    currency: str
    delta_arr: Decimal
    effective_date: date


@dataclass(frozen=True, slots=True)
class SubscriptionContracted(Fact):
    type: ClassVar[str] = "subscription.contracted"
    customer_id: str
    currency: str
    delta_arr: Decimal
    effective_date: date


@dataclass(frozen=True, slots=True)
class SubscriptionChurned(Fact):
    type: ClassVar[str] = "subscription.churned"
    customer_id: str
    effective_date: date
    reason: str


@dataclass(frozen=True, slots=True)
class UsageReported(Fact):
    type: ClassVar[str] = "usage.reported"
    customer_id: str
    currency: str
    metric: str
    quantity: Decimal
    revenue: Decimal
    period_start: date
    period_end: date


@dataclass(frozen=True, slots=True)
class RefundIssued(Fact):
    type: ClassVar[str] = "refund.issued"
    customer_id: str
    currency: str
    amount: Decimal
    invoice_id: str


@dataclass(frozen=True, slots=True)
class MilestoneAchieved(Fact):
    type: ClassVar[str] = "milestone.achieved"
    customer_id: str
    milestone: str
    score: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ReferralQualified(Fact):
    type: ClassVar[str] = "referral.qualified"
    partner_level: ClassVar[bool] = True
    partner_id: str
    lead_id: str


@dataclass(frozen=True, slots=True)
class ComarketingCompleted(Fact):
    type: ClassVar[str] = "comarketing.completed"
    partner_level: ClassVar[bool] = True
    partner_id: str
    activity: str
    currency: str
    spend: Decimal


@dataclass(frozen=True, slots=True)
class PayoutConfirmed(Fact):
    type: ClassVar[str] = "payout.confirmed"
    partner_level: ClassVar[bool] = True
    payout_id: str
    reference: str
    partner_id: str = ""


@dataclass(frozen=True, slots=True)
class PayoutFailed(Fact):
    type: ClassVar[str] = "payout.failed"
    partner_level: ClassVar[bool] = True
    payout_id: str
    reference: str
    partner_id: str = ""


@dataclass(frozen=True, slots=True)
class AdjustmentPosted(Fact):
    type: ClassVar[str] = "adjustment.posted"
    partner_level: ClassVar[bool] = True
    partner_id: str
    currency: str
    amount: Decimal
    reason: str
    approved_by: str


# --- commands: journaled like facts, produced only by trailpay itself -----------------------

# The CloudEvents source of every command trailpay produces (the gateway and the accrual
# service's payout scheduler). The engine refuses a command from any other source.
COMMAND_SOURCE = "trailpay.gateway"


@dataclass(frozen=True, slots=True)
class PayoutRunRequested(Fact):
    """Pay this partner what was payable at the end of `as_of` (one per partner and run)."""

    type: ClassVar[str] = "payout.run_requested"
    partner_level: ClassVar[bool] = True
    partner_id: str
    run_id: str
    as_of: date


@dataclass(frozen=True, slots=True)
class DisputeOpened(Fact):
    """A partner (or ops) disputes a statement line; the partner's payouts are held."""

    type: ClassVar[str] = "dispute.opened"
    partner_level: ClassVar[bool] = True
    partner_id: str
    dispute_id: str
    posting_id: str
    reason: str
    opened_by: str


@dataclass(frozen=True, slots=True)
class DisputeResolved(Fact):
    """Ops resolved a dispute; an accepted one may carry a signed adjustment."""

    type: ClassVar[str] = "dispute.resolved"
    partner_level: ClassVar[bool] = True
    partner_id: str
    dispute_id: str
    outcome: str  # accepted | rejected
    resolved_by: str
    adjustment_currency: str = ""
    adjustment_amount: Decimal | None = None
    adjustment_reason: str = ""


@dataclass(frozen=True, slots=True)
class PlanRerated(Fact):
    """A plan version published with `retroactive: true` re-rates this partner's facts
    dated from its effective_from: the partner's history folds again from there."""

    type: ClassVar[str] = "plan.rerated"
    partner_level: ClassVar[bool] = True
    partner_id: str
    plan_id: str
    version: int


FACT_TYPES: Mapping[str, type[Fact]] = {
    cls.type: cls
    for cls in (
        DealClosed, SubscriptionRenewed, SubscriptionExpanded, SubscriptionContracted,
        SubscriptionChurned, UsageReported, RefundIssued, MilestoneAchieved,
        ReferralQualified, ComarketingCompleted, PayoutConfirmed, PayoutFailed,
        AdjustmentPosted, PayoutRunRequested, DisputeOpened, DisputeResolved, PlanRerated,
    )
}
COMMAND_TYPES = frozenset({PayoutRunRequested.type, DisputeOpened.type, DisputeResolved.type,
                           PlanRerated.type})

MONEY_FIELDS = frozenset({"acv", "tcv", "arr", "delta_arr", "revenue", "amount", "spend"})


def _to_decimal(name: str, value: Any) -> Decimal | None:
    t = type(value)
    if t is str:  # the usual case, and every check below passes for a finite one
        try:
            d = Decimal(value)
        except InvalidOperation:
            pass
        else:
            if d.is_finite():
                return d
    elif t is int and name not in MONEY_FIELDS:
        return Decimal(value)
    if value is None:
        return None
    if name in MONEY_FIELDS and not isinstance(value, str):
        raise FactError(name, "money must be a decimal string such as \"1234.50\"")
    if isinstance(value, float):
        raise FactError(name, "must be a decimal string or integer, not a float")
    try:
        return parse_decimal(value)
    except ValueError as exc:
        raise FactError(name, str(exc)) from None


def _to_date(name: str, value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise FactError(name, f"not an ISO date (YYYY-MM-DD): {value!r}") from None


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FactError(name, "must be an integer")
    return value


def _to_partners(name: str, value: Any) -> tuple[PartnerShare, ...]:
    return tuple(PartnerShare(p["partner_id"], p["role"], _to_decimal("share", p["share"]))
                 for p in value)


_DECIMAL_HINTS = (Decimal, "Decimal", Decimal | None, "Decimal | None")


def _converter(name: str, hint: Any) -> Any:
    """The conversion for a field, or None when the JSON value is used as it is."""
    if hint in _DECIMAL_HINTS:
        return _to_decimal
    if hint in (date, "date"):
        return _to_date
    if hint in (int, "int"):
        return _to_int
    if name == "partners":
        return _to_partners
    return None


def _convert(name: str, hint: Any, value: Any) -> Any:
    conv = _converter(name, hint)
    return value if conv is None else conv(name, value)


@cache
def _hints(cls: type[Fact]) -> tuple[tuple[str, Any], ...]:
    """(field, type hint) per fact class; resolved once (get_type_hints is slow)."""
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in fields(cls))


@cache
def _plan(cls: type[Fact]) -> tuple[tuple[str, Any], ...]:
    """(field, converter or None) per fact class, decided once instead of per value."""
    return tuple((name, _converter(name, hint)) for name, hint in _hints(cls))


@cache
def _builder(cls: type[Fact]) -> tuple[type[Fact], Any, tuple[tuple[str, Any], ...]]:
    """(class, fast constructor, field plan) per fact class, made once."""
    return cls, maker(cls), _plan(cls)


@cache
def _direct(cls: type[Fact]) -> Any:
    """A function data -> fact for a dict holding every required field: the plan's
    conversions in field order, as arguments of the fast constructor; a missing
    required field raises KeyError (fact_from_data then takes the general path)."""
    env: dict[str, Any] = {"_make": maker(cls)}
    args = []
    for f, (name, conv) in zip(fields(cls), _plan(cls), strict=True):
        value = f"data[{name!r}]"
        if conv is not None:
            env[f"_c_{name}"] = conv
            value = f"_c_{name}({name!r}, {value})"
        if f.default is not MISSING:
            env[f"_d_{name}"] = f.default
            value = f"({value} if {name!r} in data else _d_{name})"
        args.append(value)
    exec(f"def build(data):\n    return _make({', '.join(args)})\n", env)  # noqa: S102
    return env["build"]


_DIRECT: dict[type[Fact], Any] = {}


def fact_from_data(event_type: str, data: Mapping[str, Any]) -> Fact:
    """Build the fact for a CloudEvents `type` from its (schema-valid) `data`."""
    cls = FACT_TYPES.get(event_type)
    if cls is None:
        raise FactError("type", f"unknown event type {event_type!r}")
    if type(data) is dict:
        build = _DIRECT.get(cls)
        if build is None:
            build = _DIRECT[cls] = _direct(cls)
        try:
            fact = build(data)
        except KeyError:
            pass  # a field is missing: the general path below says which
        else:
            if isinstance(fact, DealClosed):
                _check_shares(fact)
            return fact
    cls, make, plan = _builder(cls)
    kwargs = {}
    for name, conv in plan:
        if name in data:
            value = data[name]
            kwargs[name] = value if conv is None else conv(name, value)
    try:
        fact = make(**kwargs)
    except TypeError:
        try:  # the class itself says what is missing, in its own words
            fact = cls(**kwargs)
        except TypeError as exc:
            raise FactError("data", str(exc)) from None
    if isinstance(fact, DealClosed):
        _check_shares(fact)
    return fact


def _check_shares(fact: DealClosed) -> None:
    # One share per partner: a partner's entry for an event is keyed (journal seq, partner),
    # so a second share of the same partner would have no entry of its own.
    seen: set[str] = set()
    for i, p in enumerate(fact.partners):
        if p.partner_id in seen:
            raise FactError(f"data.partners[{i}].partner_id",
                            f"partner {p.partner_id!r} is named twice; give it one share")
        seen.add(p.partner_id)
    total = sum((p.share for p in fact.partners), Decimal(0))
    if fact.partners and total != 1:
        raise FactError("data.partners", f"shares must sum to 1, they sum to {total}")


@cache
def _names(cls: type[Fact]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def fact_to_data(fact: Fact) -> dict[str, Any]:
    """The JSON-ready `data` of a fact (Decimals and dates as strings)."""
    out: dict[str, Any] = {}
    for name in _names(type(fact)):
        v = getattr(fact, name)
        if isinstance(v, Decimal):
            v = str(v)
        elif isinstance(v, date):
            v = v.isoformat()
        elif name == "partners":
            v = [{"partner_id": p.partner_id, "role": p.role, "share": str(p.share)} for p in v]
        out[name] = v
    return out
