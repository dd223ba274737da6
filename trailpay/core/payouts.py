"""Payout runs: their ids, when a plan's cadence makes one due, and what changed in a state.

Pure: the scheduler (services/accrual) reads the clock and the projections, and asks
this module which partners are due and for which `as_of`; the HTTP endpoint and the
scheduler build the same ids, so a run requested twice is one journal event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


CADENCES = ("monthly", "quarterly", "on_demand")


def run_id(as_of: date) -> str:
    """One run per as_of date, shared by every partner it pays."""
    return f"run-{as_of.isoformat()}"


def run_event_id(as_of: date, partner_id: str) -> str:
    """The journal id of one partner's part of a run: the same run twice is a duplicate."""
    return f"payout-run:{as_of.isoformat()}:{partner_id}"


def payout_id(run: str, partner_id: str, currency: str) -> str:
    return f"{run}:{partner_id}:{currency}"


def period_end(cadence: str, today: date) -> date | None:
    """The as_of of the latest period that has ended before `today`; None for on_demand.

    monthly: the last day of the previous month; quarterly: of the previous quarter.
    """
    if cadence == "monthly":
        return today.replace(day=1) - timedelta(days=1)
    if cadence == "quarterly":
        first_month = 3 * ((today.month - 1) // 3) + 1
        return today.replace(month=first_month, day=1) - timedelta(days=1)
    return None


@dataclass(frozen=True, slots=True)
class Schedulable:
    """What the scheduler knows about one partner."""

    partner_id: str
    cadences: tuple[tuple[date, str], ...]  # (effective_from, cadence) of its plan's versions
    enrolled_on: date  # the day its first enrolment was journaled
    last_run: date | None


def cadence_on(cadences: Iterable[tuple[date, str]], day: date) -> str | None:
    """The cadence of the plan version in force on `day` (the latest effective_from <= day)."""
    current = None
    for effective_from, cadence in sorted(cadences):
        if effective_from <= day:
            current = cadence
    return current


def due_runs(partners: Iterable[Schedulable], today: date) -> list[tuple[str, date]]:
    """(partner_id, as_of) for every partner whose cadence has a period ended and not yet run.

    The cadence is the one in force on the last day of the previous month. A partner
    enrolled after a period ended is first paid at the end of the next one.
    """
    month_end = today.replace(day=1) - timedelta(days=1)
    out = []
    for p in partners:
        cadence = cadence_on(p.cadences, month_end)
        as_of = period_end(cadence, today) if cadence else None
        if as_of is None or p.enrolled_on > as_of:
            continue
        if p.last_run is not None and p.last_run >= as_of:
            continue
        out.append((p.partner_id, as_of))
    return sorted(out)
