"""What changed between two plan versions, in words a partner can read.

Partners are told when the rules change; partner ops need the same list to check a
version before it goes out. A pure diff of two parsed versions: rules added and
removed, and for a rule kept (same id) every term that differs (rates, caps, amounts,
tiers, vesting, who it applies to), then the plan's own terms (clawback, payout,
currency, partner types). Each change says what it was and what it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from trailpay.core.plans import Amounts, PlanVersion, Rule, Tier, Vesting
from trailpay.core.rules.base import fmt, pct


@dataclass(frozen=True, slots=True)
class Change:
    what: str  # rule_added | rule_removed | rate | cap | amount | tiers | vesting | payout | ...
    rule_id: str | None
    field: str  # the document's field, e.g. "rules.anchor.rate" or "payout.minimum"
    before: str | None
    after: str | None
    sentence: str


def _amounts(a: Amounts | None) -> str | None:
    if a is None:
        return None
    return " / ".join(f"{fmt(v, c)} {c}" for c, v in sorted(a.by_currency.items()))


def _rate(r: Decimal | None) -> str | None:
    return None if r is None else pct(r)


def _tiers(ts: tuple[Tier, ...]) -> str:
    return ", ".join(f"from {t.start.normalize():f} ×{t.multiplier.normalize():f}" for t in ts)


def _vesting(v: Vesting | None) -> str:
    if v is None:
        return "none"
    return (f"{pct(v.held_pct)} held until {' or '.join(v.release_on)} within "
            f"{v.within_days} days")


def _years(ys: tuple[tuple[int, Decimal], ...]) -> str:
    return ", ".join(f"year {y}: {pct(r)}" for y, r in ys)


def _types(ts: tuple[str, ...]) -> str:
    return ", ".join(ts) if ts else "every type"


# (field, category, how to show it) for the fields a rule may carry.
RULE_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("kind", "kind", str), ("partner_types", "partner_types", _types), ("base", "base", str),
    ("rate", "rate", _rate), ("cap", "cap", _amounts), ("vesting", "vesting", _vesting),
    ("rates_by_year", "rate", _years), ("milestone", "milestone", str),
    ("min_score", "min_score", lambda d: None if d is None else f"{d.normalize():f}"),
    ("amount", "amount", _amounts), ("match_rate", "rate", _rate),
    ("cap_per_quarter", "cap", _amounts), ("tiers", "tiers", _tiers),
)


def _rule_summary(r: Rule) -> str:
    parts = [r.kind]
    for name, _, show in RULE_FIELDS[2:]:
        value = getattr(r, name)
        if value not in (None, ()):
            parts.append(f"{name.replace('_', ' ')} {show(value)}")
    if r.partner_types:
        parts.append(f"for {_types(r.partner_types)}")
    return ", ".join(parts)


def _rule_changes(old: Rule, new: Rule) -> list[Change]:
    out = []
    for name, what, show in RULE_FIELDS:
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        before = None if a in (None, ()) else show(a)
        after = None if b in (None, ()) else show(b)
        label = name.replace("_", " ")
        sentence = (f"Rule {new.id}: {label} " +
                    (f"changed from {before} to {after}" if before and after else
                     f"{after} added" if after else f"{before} removed"))
        out.append(Change(what, new.id, f"rules.{new.id}.{name}", before, after, sentence))
    return out


def _term(what: str, field: str, label: str, before: Any, after: Any) -> Change | None:
    if before == after:
        return None
    return Change(what, None, field, str(before), str(after),
                  f"{label} changed from {before} to {after}")


def terms_for(plan: PlanVersion, partner_type: str | None) -> PlanVersion:
    """The version as one partner type sees it: only the rules that apply to that type."""
    if partner_type is None:
        return plan
    return replace(plan, rules=tuple(r for r in plan.rules if r.applies_to(partner_type)))


def diff(old: PlanVersion, new: PlanVersion) -> list[Change]:
    """The changes from `old` to `new`, rules first in the new version's order, then the
    removed rules, then the plan's own terms."""
    out: list[Change] = []
    before = {r.id: r for r in old.rules}
    after = {r.id: r for r in new.rules}
    for r in new.rules:
        if r.id not in before:
            out.append(Change("rule_added", r.id, f"rules.{r.id}", None, _rule_summary(r),
                              f"New rule {r.id}: {_rule_summary(r)}"))
        else:
            out.extend(_rule_changes(before[r.id], r))
    for r in old.rules:
        if r.id not in after:
            out.append(Change("rule_removed", r.id, f"rules.{r.id}", _rule_summary(r), None,
                              f"Rule {r.id} removed (it was: {_rule_summary(r)})"))
    terms = (
        _term("currency", "currency", "Plan currency", old.currency, new.currency),
        _term("partner_types", "partner_types", "Partner types covered",
              _types(old.partner_types), _types(new.partner_types)),
        _term("clawback", "clawback.window_days", "Clawback window (days)",
              old.clawback.window_days, new.clawback.window_days),
        _term("clawback", "clawback.mode", "Clawback mode", old.clawback.mode,
              new.clawback.mode),
        _term("payout", "payout.minimum", "Payout minimum", _amounts(old.payout.minimum),
              _amounts(new.payout.minimum)),
        _term("payout", "payout.hold_days", "Hold period (days)", old.payout.hold_days,
              new.payout.hold_days),
        _term("payout", "payout.cadence", "Payout cadence", old.payout.cadence,
              new.payout.cadence),
    )
    out.extend(c for c in terms if c is not None)
    return out
