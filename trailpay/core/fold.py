"""One fold: a partner's entries, in the order design §4 defines, -> postings, state, effects.

Live accrual (through timeline.py), the rebuild, the bench's expected balances and
simulations all fold through here, so they can never disagree about a rule or about
which entries the engine refuses. A refused entry leaves the state as it was and is
reported with the engine's reason; it never stops the entries after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from trailpay.core.accrual import step
from trailpay.core.effects import Effect
from trailpay.core.journal import LedgerEntry, sort_key
from trailpay.core.money import MoneyError
from trailpay.core.plans import Enrollment, PlanBook, PlanError
from trailpay.core.postings import PostingGroup
from trailpay.core.rules.base import AccrualError, VolumeRead
from trailpay.core.state import PartnerState, Payout, new_state

# What the engine may raise for one entry: the entry is refused, the fold goes on.
# Arithmetic and value errors are included: a 400-digit amount that passed the schemas
# must dead-letter its own entry, not stall the partition (issue 14).
REFUSALS = (AccrualError, PlanError, LookupError, MoneyError, ArithmeticError, ValueError,
            TypeError)

# The plan book and enrolment an entry is accrued with (plans.Books): books(entry), or
# books(entry, seen) knowing the versions journaled before seq `seen` (a re-fold).
Books = Callable[..., tuple[PlanBook, Enrollment]]


def reason_of(exc: BaseException) -> str:
    """The engine's reason; for an error no rule raised on purpose, its kind too."""
    reason = getattr(exc, "reason", None)
    if reason:
        return reason
    if isinstance(exc, (PlanError, LookupError, MoneyError)):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


@dataclass(slots=True)
class Folded:
    state: PartnerState
    groups: list[PostingGroup] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    refused: list[tuple[LedgerEntry, str]] = field(default_factory=list)
    applied: int = 0


Terms = tuple[PlanBook, Enrollment] | None  # an entry's plan book and enrolment (None: none)


def attempt(state: PartnerState, e: LedgerEntry, terms: Terms,
            recorded: Mapping[str, Payout] | None = None,
            volumes: list[VolumeRead] | None = None
            ) -> tuple[PartnerState, list[PostingGroup], list[Effect], str | None]:
    """One entry onto a state: (new state, groups, effects, None), or, refused, (the same
    state, [], [], the reason). `recorded`: the payouts already made, when the entry is
    folded again (a payout run then pays what it paid the first time). `volumes`: where
    to append the volumes it read to pick a tier multiplier (meaningless if refused)."""
    if terms is None:
        return state, [], [], "the partner has no plan terms for this entry"
    try:
        groups, after, effects = step(state, e, *terms, recorded, volumes)
    except REFUSALS as exc:
        return state, [], [], reason_of(exc)
    return after, groups, effects, None


def terms_of(books: Books, e: LedgerEntry, *seen: int) -> tuple[Terms, str | None]:
    """books(e[, seen]), or None and the reason there are none."""
    try:
        return books(e, *seen), None
    except REFUSALS as exc:
        return None, reason_of(exc)


def fold(state: PartnerState, entries: Iterable[LedgerEntry], books: Books) -> Folded:
    """Fold entries (already in sort_key order) onto a state; the state is not changed."""
    out = Folded(state)
    for e in entries:
        terms, why = terms_of(books, e)
        if why is None:
            out.state, groups, effects, why = attempt(out.state, e, terms)
        if why is not None:
            out.refused.append((e, why))
            continue
        out.applied += 1
        out.groups.extend(groups)
        out.effects.extend(effects)
    return out


def fold_partners(entries: Iterable[LedgerEntry], books: Books) -> dict[str, Folded]:
    """The defined result (design §4) of a set of entries: each partner's entries sorted by
    (event time, source, id) and folded from nothing. What every arrival order must equal."""
    by_partner: dict[str, list[LedgerEntry]] = {}
    for e in entries:
        by_partner.setdefault(e.partner_id, []).append(e)
    return {p: fold(new_state(p), sorted(es, key=sort_key), books)
            for p, es in sorted(by_partner.items())}
