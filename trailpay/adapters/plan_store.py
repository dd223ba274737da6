"""Plans and partner enrolments: journaled commands and their projections.

Publishing a plan version or enrolling a partner appends a command to the
journal (stream "gateway") and updates the projection in the same
transaction. The accrual reads every version of a plan (a version applies to the
facts dated in its effective period, whenever they arrive: design §4) and each
partner's enrolments with the time each took effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from trailpay.adapters import journal_store, outbox
from trailpay.adapters.db import raw
from trailpay.adapters.journal_store import JournalRecord
from trailpay.adapters.commands import command_event
from trailpay.core.facts import PlanRerated
from trailpay.core.journal import body_hash
from trailpay.core.plan_changes import diff
from trailpay.core.plans import (
    Books, Enrolled, Enrollment, PlanError, PlanHistory, PlanVersion, check_overrides,
    parse_plan,
)

GATEWAY_STREAM = "gateway"
COMMAND_SOURCE = "trailpay.gateway"


class VersionConflict(Exception):
    """A different document was already published under this plan version."""


def canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def command_record(event_id: str, type_: str, key: str, data: Mapping[str, Any],
                   at: datetime | None = None) -> JournalRecord:
    at = at or datetime.now(UTC)
    body = {"specversion": "1.0", "id": event_id, "source": COMMAND_SOURCE, "type": type_,
            "time": at.isoformat(), "data": data}
    return JournalRecord(COMMAND_SOURCE, event_id, type_, key, at, canonical(body))


async def journal_command(conn: AsyncConnection, record: JournalRecord) -> int:
    result = await journal_store.append(conn, GATEWAY_STREAM, [record])
    return result.seq_of[(record.source, record.event_id)]


class RetroactiveNeeded(Exception):
    """Publishing would re-rate facts already recorded, and the request did not say so."""

    def __init__(self, facts: int, partners: int) -> None:
        super().__init__(f"{facts} recorded facts of {partners} partners")
        self.facts = facts
        self.partners = partners


@dataclass(frozen=True, slots=True)
class Published:
    created: bool
    plan: PlanVersion
    rerated: dict[str, int]  # partner -> recorded facts this version re-rates (retroactive)


async def facts_in_period(conn: AsyncConnection, plan: PlanVersion,
                          before_seq: int | None = None) -> dict[str, int]:
    """Facts already recorded (journaled before `before_seq`, or now) for the partners on
    this plan, dated in the version's period: from its effective_from up to the next
    version's. These are what publishing it re-rates (design §4)."""
    pg = await raw(conn)
    until = await pg.fetchval(
        "SELECT min(effective_from) FROM plan_versions WHERE plan_id = $1 "
        "AND effective_from > $2", plan.plan_id, plan.effective_from)
    rows = await pg.fetch(
        "SELECT e.partner_id, count(*) FROM ledger_entries e "
        "JOIN journal j ON j.seq = e.journal_seq "
        "JOIN partners p ON p.partner_id = e.partner_id AND p.plan_id = $1 "
        "WHERE j.source <> $2 AND j.effective_at >= $3 "
        "AND ($4::timestamptz IS NULL OR j.effective_at < $4) "
        "AND ($5::bigint IS NULL OR e.journal_seq < $5) GROUP BY e.partner_id",
        plan.plan_id, COMMAND_SOURCE, _start(plan.effective_from),
        _start(until) if until else None, before_seq)
    return {r[0]: r[1] for r in rows}


def _start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


async def publish_plan(conn: AsyncConnection, doc: Mapping[str, Any],
                       retroactive: bool = False, notify_topic: str | None = None) -> Published:
    """Publish a plan version. Same document again: not created. A version that would
    re-rate recorded facts needs `retroactive` (else RetroactiveNeeded); then `rerated`
    names the partners to fold again (rerate_events), also when it is published again.
    With `notify_topic`, a new version queues plan.version_published in the outbox, in
    the same transaction (sent by the accrual's publisher after commit)."""
    plan = parse_plan(doc)
    doc_hash = body_hash(canonical(doc))
    pg = await raw(conn)
    existing = await pg.fetchrow(
        "SELECT doc_hash, journal_seq FROM plan_versions WHERE plan_id = $1 AND version = $2",
        plan.plan_id, plan.version)
    if existing is not None:
        if existing[0] != doc_hash:
            raise VersionConflict(
                f"plan {plan.plan_id} version {plan.version} is already published with other "
                "terms; versions are immutable: publish a new version")
        rerated = await facts_in_period(conn, plan, existing[1]) if retroactive else {}
        return Published(False, plan, rerated)
    rerated = await facts_in_period(conn, plan)
    if rerated and not retroactive:
        raise RetroactiveNeeded(sum(rerated.values()), len(rerated))
    seq = await journal_command(conn, command_record(
        f"plan:{plan.plan_id}:{plan.version}", "trailpay.plan.published", plan.plan_id, doc))
    facts = sum(rerated.values())
    await pg.execute(
        "INSERT INTO plan_versions (plan_id, version, effective_from, document, doc_hash, "
        "journal_seq, retroactive, rerated_facts) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8)",
        plan.plan_id, plan.version, plan.effective_from, canonical(doc).decode(), doc_hash, seq,
        bool(rerated), facts)
    if notify_topic is not None:
        prev = await pg.fetchval(
            "SELECT document::text FROM plan_versions WHERE plan_id = $1 AND version < $2 "
            "ORDER BY version DESC LIMIT 1", plan.plan_id, plan.version)
        at = await pg.fetchval("SELECT received_at FROM journal WHERE seq = $1", seq)
        await outbox.write(conn, notify_topic, [(plan.plan_id, version_published(
            plan, parse_plan(orjson.loads(prev)) if prev else None, at, rerated))])
    return Published(True, plan, rerated)


def version_published(plan: PlanVersion, previous: PlanVersion | None, at: datetime,
                      rerated: Mapping[str, int]) -> dict[str, Any]:
    """plan.version_published (schemas/messages/plan.version_published.json): a CloudEvent
    that partner communications follow; what changed is in words, from the core's diff."""
    changes = diff(previous, plan) if previous is not None else []
    base = f"/v1/plans/{plan.plan_id}"
    return {
        "specversion": "1.0", "id": f"plan:{plan.plan_id}:{plan.version}:published",
        "source": COMMAND_SOURCE, "type": "plan.version_published", "time": at.isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "plan_id": plan.plan_id, "version": plan.version,
            "effective_from": plan.effective_from.isoformat(), "currency": plan.currency,
            "partner_types": list(plan.partner_types),
            "previous_version": previous.version if previous is not None else None,
            "retroactive": bool(rerated), "rerated_facts": sum(rerated.values()),
            "rerated_partners": len(rerated),
            "changes": [{"what": c.what, "rule_id": c.rule_id, "field": c.field,
                         "before": c.before, "after": c.after, "sentence": c.sentence}
                        for c in changes],
            "explainer": f"{base}/versions/{plan.version}/explainer",
            "changes_url": (f"{base}/changes?from={previous.version}&to={plan.version}"
                            if previous is not None else None)}}


def rerate_events(plan: PlanVersion, partner_ids: Iterable[str]) -> list[tuple[str, bytes]]:
    """The plan.rerated commands (key, CloudEvent) that fold these partners' histories again
    under a retroactive version: dated just before its effective_from, so they sort before
    every fact of its period."""
    at = _start(plan.effective_from) - timedelta(microseconds=1)
    return [(p, command_event(f"plan-rerated:{plan.plan_id}:{plan.version}:{p}",
                              PlanRerated.type, at, {"partner_id": p, "plan_id": plan.plan_id,
                                                     "version": plan.version}))
            for p in sorted(partner_ids)]


async def enroll_partner(conn: AsyncConnection, partner_id: str, type_: str, plan_id: str,
                         overrides: Mapping[str, Any], payment: Mapping[str, Any] | None,
                         at: datetime | None = None) -> tuple[bool, int]:
    """Enrol or change a partner; (changed?, journal seq). Unchanged terms: no new command.
    `at`: when the change takes effect (default now; a pilot's arms change at its dates).

    The partner's type must be one the plan's latest version has terms for, and every
    override must name a rule of that version and a field that may change (PlanError).
    """
    pg = await raw(conn)
    doc = await pg.fetchval("SELECT document::text FROM plan_versions WHERE plan_id = $1 "
                            "ORDER BY version DESC LIMIT 1", plan_id)
    if doc is None:
        raise PlanError("plan_id", f"no published plan {plan_id!r}")
    latest = parse_plan(orjson.loads(doc))
    if latest.partner_types and type_ not in latest.partner_types:
        raise PlanError("type", f"plan {plan_id} has no terms for partner type {type_!r}; it "
                        f"covers {', '.join(latest.partner_types)}")
    check_overrides(latest, overrides)
    await pg.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"partner:{partner_id}")
    current = await pg.fetchrow(
        "SELECT type, plan_id, overrides::text, payment::text, journal_seq FROM partners "
        "WHERE partner_id = $1", partner_id)
    data = {"partner_id": partner_id, "type": type_, "plan_id": plan_id,
            "overrides": dict(overrides), "payment": dict(payment) if payment else None}
    if current is not None and (
        current[0], current[1], orjson.loads(current[2]),
        orjson.loads(current[3]) if current[3] else None,
    ) == (type_, plan_id, data["overrides"], data["payment"]):
        return False, current[4]
    n = await pg.fetchval("SELECT count(*) FROM partner_enrollments WHERE partner_id = $1",
                          partner_id)
    seq = await journal_command(conn, command_record(
        f"partner:{partner_id}:{n + 1}", "trailpay.partner.enrolled", partner_id, data, at))
    ov = canonical(data["overrides"]).decode()
    pay = canonical(data["payment"]).decode() if payment else None
    await pg.execute(
        "INSERT INTO partner_enrollments (partner_id, journal_seq, type, plan_id, overrides, "
        "payment) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)",
        partner_id, seq, type_, plan_id, ov, pay)
    await pg.execute(
        "INSERT INTO partners (partner_id, type, plan_id, overrides, payment, journal_seq) "
        "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6) ON CONFLICT (partner_id) DO UPDATE SET "
        "type = EXCLUDED.type, plan_id = EXCLUDED.plan_id, overrides = EXCLUDED.overrides, "
        "payment = EXCLUDED.payment, journal_seq = EXCLUDED.journal_seq, updated_at = now()",
        partner_id, type_, plan_id, ov, pay, seq)
    return True, seq


async def load_enrollments(conn: AsyncConnection, partner_ids: list[str] | None = None
                           ) -> dict[str, list[Enrolled]]:
    """Partners' enrolments in journal order, each with the time it took effect (the
    command's time; a partner's first enrolment covers everything before it too)."""
    pg = await raw(conn)
    rows = await pg.fetch(
        "SELECT e.partner_id, e.journal_seq, e.type, e.plan_id, e.overrides::text, "
        "j.effective_at FROM partner_enrollments e JOIN journal j ON j.seq = e.journal_seq "
        "WHERE $1::text[] IS NULL OR e.partner_id = ANY($1::text[]) "
        "ORDER BY e.partner_id, e.journal_seq", partner_ids)
    out: dict[str, list[Enrolled]] = {}
    for r in rows:
        history = out.setdefault(r[0], [])
        history.append(Enrolled(r[1], Enrollment(
            partner_id=r[0], type=r[2], plan_id=r[3], overrides=orjson.loads(r[4])),
            r[5] if history else None))
    return out


async def load_books(conn: AsyncConnection) -> Books:
    """Every plan version (with the journal seq that published it) and every enrolment."""
    pg = await raw(conn)
    plans: dict[str, PlanHistory] = {}
    for r in await pg.fetch("SELECT plan_id, journal_seq, document::text FROM plan_versions"):
        plans.setdefault(r[0], PlanHistory(r[0])).add(r[1], parse_plan(orjson.loads(r[2])))
    return Books(plans, await load_enrollments(conn))


@dataclass(frozen=True, slots=True)
class PlanVersionView:
    version: int
    effective_from: date
    document: dict[str, Any]
    journal_seq: int
    retroactive: bool = False  # publishing it re-rated facts already recorded
    rerated_facts: int = 0
    published_at: datetime | None = None


async def plan_versions(conn: AsyncConnection, plan_id: str) -> list[PlanVersionView]:
    """A plan's published versions, oldest first (none: no such plan)."""
    pg = await raw(conn)
    rows = await pg.fetch(
        "SELECT v.version, v.effective_from, v.document::text, v.journal_seq, v.retroactive, "
        "v.rerated_facts, j.received_at FROM plan_versions v "
        "LEFT JOIN journal j ON j.seq = v.journal_seq WHERE v.plan_id = $1 ORDER BY v.version",
        plan_id)
    return [PlanVersionView(r[0], r[1], orjson.loads(r[2]), r[3], r[4], r[5], r[6])
            for r in rows]


@dataclass(frozen=True, slots=True)
class PartnerView:
    partner_id: str
    type: str
    plan_id: str
    overrides: dict[str, Any]
    payment: dict[str, Any] | None
    journal_seq: int
    updated_at: datetime


async def partner(conn: AsyncConnection, partner_id: str) -> PartnerView | None:
    """A partner's current terms, as last enrolled. None: not enrolled."""
    pg = await raw(conn)
    row = await pg.fetchrow(
        "SELECT type, plan_id, overrides::text, payment::text, journal_seq, updated_at FROM partners "
        "WHERE partner_id = $1", partner_id)
    if row is None:
        return None
    return PartnerView(partner_id, row[0], row[1], orjson.loads(row[2]),
                       orjson.loads(row[3]) if row[3] else None, row[4], row[5])


async def known_partners(conn: AsyncConnection, ids: set[str]) -> set[str]:
    """Those of `ids` that are enrolled partners."""
    if not ids:
        return set()
    pg = await raw(conn)
    rows = await pg.fetch("SELECT partner_id FROM partners WHERE partner_id = ANY($1::text[])",
                          list(ids))
    return {r[0] for r in rows}


class PlanCache:
    """Parsed plan versions (immutable, so cached forever) and per-batch enrolments."""

    def __init__(self) -> None:
        self._plans: dict[str, PlanHistory] = {}
        self._loaded: set[tuple[str, int]] = set()

    async def books(self, conn: AsyncConnection, partner_ids: list[str]) -> Books:
        """The books for a batch: these partners' enrolments and all their plans' versions."""
        enrollments = await load_enrollments(conn, partner_ids)
        await self.refresh(conn, sorted({e.enrollment.plan_id for h in enrollments.values()
                                         for e in h}))
        return Books(self._plans, enrollments)

    def knows(self, plan_id: str, version: int) -> bool:
        return (plan_id, version) in self._loaded

    async def refresh(self, conn: AsyncConnection, plan_ids: list[str]) -> None:
        pg = await raw(conn)
        rows = await pg.fetch(
            "SELECT plan_id, version FROM plan_versions WHERE plan_id = ANY($1::text[])",
            plan_ids)
        missing = [(r[0], r[1]) for r in rows if (r[0], r[1]) not in self._loaded]
        for plan_id, version in missing:
            doc, seq = await pg.fetchrow(
                "SELECT document::text, journal_seq FROM plan_versions "
                "WHERE plan_id = $1 AND version = $2", plan_id, version)
            history = self._plans.get(plan_id) or self._plans.setdefault(plan_id,
                                                                          PlanHistory(plan_id))
            history.add(seq, parse_plan(orjson.loads(doc)))
            self._loaded.add((plan_id, version))
