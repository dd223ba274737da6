"""The accrual's batch handler: ledger entries -> partner timelines -> postings and effects.

Entries are claimed (accrual_applied) in a batch's sorted order, which is the order they
arrive at their partners' timelines; one that sorts before an earlier batch's entry is
late and folds its partner's history again (core.timeline).
Progress, postings, balances, partner state, the payouts and disputes projections and the
payout.requested outbox rows commit in one transaction (trailpay.adapters.posting_store).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trailpay import metrics
from trailpay.adapters import dead_letters, payout_store, posting_store
from trailpay.adapters.db import Engine, raw
from trailpay.adapters.dead_letters import DeadLetter
from trailpay.adapters.fastjson import entry_json
from trailpay.adapters.plan_store import PlanCache
from trailpay.adapters.state_store import StateStore
from trailpay.core.facts import PlanRerated
from trailpay.core.journal import LedgerEntry, sort_key
from trailpay.core.postings import PostingGroup


class PlanNotYetVisible(RuntimeError):
    """A plan.rerated command arrived before its version's transaction committed."""


@dataclass
class ApplyReport:
    applied: int = 0
    skipped: int = 0
    groups: list[PostingGroup] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    messages: int = 0  # payout.requested queued in the outbox
    refolds: int = 0


def _dead_letter(e: LedgerEntry, reason: str) -> DeadLetter:
    return DeadLetter(stage="accrual", reason=f"not accrued: {reason}",
                      payload=entry_json(e).decode(), source=e.source, event_id=e.event_id,
                      type=e.fact.type)


async def handle_batch(engine: Engine, plans: PlanCache, entries: list[LedgerEntry],
                       payouts_topic: str = "trailpay.payouts",
                       store: StateStore | None = None) -> ApplyReport:
    report = ApplyReport()
    store = store if store is not None else StateStore(capacity=0)
    changes = payout_store.Changes()
    unique = list({e.entry_id: e for e in entries}.values())  # a redelivery may repeat one
    # Claimed (and so applied, and replayed by a rebuild) in the order design §4 defines:
    # partitions interleave a partner's entries within a batch, and sorting them here
    # keeps that from making any of them late (only a later batch's entry can be).
    unique.sort(key=sort_key)
    partner_ids = sorted({e.partner_id for e in unique})
    try:
        async with engine.begin() as conn:
            await posting_store.lock_partners(conn, partner_ids)
            fresh_ids = await posting_store.claim(conn, unique)
            fresh = [e for e in unique if e.entry_id in fresh_ids]
            report.skipped = len(entries) - len(fresh)
            if not fresh:
                return report
            arriving: dict[str, list[LedgerEntry]] = {}
            for e in fresh:
                arriving.setdefault(e.partner_id, []).append(e)
            ids = sorted(arriving)
            pg = await raw(conn)
            loaded = await store.load(pg, ids)
            books = await plans.books(conn, ids)
            for e in fresh:
                f = e.fact
                if isinstance(f, PlanRerated) and not plans.knows(f.plan_id, f.version):
                    # Produced by the gateway inside the transaction that publishes the
                    # version: wait (the batch is retried) until that one has committed.
                    raise PlanNotYetVisible(f"plan {f.plan_id} version {f.version}")
            behind = [p for p in ids if loaded[p].timeline.needs_history(arriving[p])]
            if behind:
                await store.read_history(pg, loaded, behind, books, fresh_ids)
            applied: dict[str, int] = {}
            dead_ids: list[str] = []
            for p in ids:
                arrival = loaded[p].timeline.arrive(arriving[p], books)
                report.groups += arrival.groups
                changes.note(arrival.effects)
                report.refolds += arrival.refolds
                metrics.REFOLDED_ENTRIES.inc(arrival.refolded)
                for e, reason in arrival.refused:
                    report.dead.append(_dead_letter(e, reason))
                    dead_ids.append(e.entry_id)
                applied[p] = len(arriving[p])
            report.applied = len(fresh) - len(dead_ids)
            await posting_store.write(conn, report.groups)
            await store.save(pg, loaded, applied)
            report.messages = await payout_store.write(conn, changes, payouts_topic)
            await posting_store.mark_dead(conn, dead_ids)
            await dead_letters.record(conn, report.dead)
    except BaseException:
        store.forget(partner_ids)  # their timelines moved on; the database did not
        raise
    store.committed(loaded, applied)
    metrics.REFOLDS.inc(report.refolds)
    payout_store.observe(changes)
    return report
