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
from trailpay.core.rules.base import AccrualError
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
    # Per entry folded, in order: the groups it made (empty when refused).
    made: list[list[PostingGroup]] = field(default_factory=list)
    # index -> the state before entries[index], where `snapshot_at(index)` said so.
    snapshots: dict[int, PartnerState] = field(default_factory=dict)


def fold(state: PartnerState, entries: Iterable[LedgerEntry], books: Books, *,
         recorded: Mapping[str, Payout] | None = None, fresh: frozenset[str] = frozenset(),
         snapshot_at: Callable[[int], bool] | None = None) -> Folded:
    """Fold entries (already in sort_key order) onto a state; the state is not changed.

    `recorded`: the payouts already made, when these entries are folded again; a payout
    run then pays what it paid the first time, except runs in `fresh` (by entry id),
    which are applied for the first time here.
    """
    out = Folded(state)
    rec = dict(recorded) if recorded is not None else None
    for i, e in enumerate(entries):
        if snapshot_at is not None and snapshot_at(i):
            out.snapshots[i] = out.state  # states are values: a step never changes its input
        try:
            book, enrollment = books(e)
            groups, after, effects = step(out.state, e, book, enrollment,
                                          None if e.entry_id in fresh else rec)
        except REFUSALS as exc:
            out.refused.append((e, reason_of(exc)))
            out.made.append([])
            continue
        out.state = after
        out.groups.extend(groups)
        out.effects.extend(effects)
        out.made.append(groups)
    return out


def fold_partners(entries: Iterable[LedgerEntry], books: Books) -> dict[str, Folded]:
    """The defined result (design §4) of a set of entries: each partner's entries sorted by
    (event time, source, id) and folded from nothing. What every arrival order must equal."""
    by_partner: dict[str, list[LedgerEntry]] = {}
    for e in entries:
        by_partner.setdefault(e.partner_id, []).append(e)
    return {p: fold(new_state(p), sorted(es, key=sort_key), books)
            for p, es in sorted(by_partner.items())}
