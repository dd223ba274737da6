"""A partner's folded history, kept so that a late entry can be folded in (design §4).

Entries reach the accrual in any order. One that sorts after everything applied to its
partner (the usual case) is applied on top of the current state. One that sorts before
(a late fact: a backfill, a retried batch, a slow partition) makes the partner's history
fold again from a snapshot before it. Nothing posted is rewritten: the late entry's own
groups are posted, dated as it happened, and so is the difference the re-fold made to
every later entry, as correction groups that name the late fact and the figures they
correct, dated when the late entry was recorded: what was already shown of other facts
is never restated in its own month, and the correction shows in the month it was made.

The late entries of one arrival (a batch's entries for the partner) fold the history
again once, together: a backfill of a thousand facts costs one re-fold, not a thousand.
What posts in which month therefore depends on how entries arrived together; the accrual
records each entry's arrival (accrual_applied.arrival), and a rebuild replays the same
arrivals in the same order, so it posts the same amounts in the same months.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, Inexact, InvalidOperation

from trailpay.core.effects import REFOLDED, Effect
from trailpay.core.facts import (
    DealClosed, MilestoneAchieved, PayoutRunRequested, PlanRerated, RefundIssued,
    SubscriptionChurned, SubscriptionExpanded, SubscriptionRenewed, UsageReported,
)
from trailpay.core.fold import Books, Terms, attempt, terms_of
from trailpay.core.rules.base import VolumeRead
from trailpay.core.shortcut import (
    Difference, Lots, MoneyRead, Volumes, carried, difference, money_change_at,
    money_read, shifted, tier_change_at,
)
from trailpay.core.journal import LedgerEntry, SortKey, sort_key
from trailpay.core.postings import PostingGroup, make_explanation, make_group, make_leg
from trailpay.core.money import make_money, round_money
from trailpay.core.state import EXACT, PartnerState, new_state, replace_book

SNAPSHOT_EVERY = 16  # entries between the states kept to fold again from
MAX_SNAPSHOTS = 256  # per partner: beyond, the older ones are thinned out (_thin)


@dataclass(slots=True)
class Arrival:
    """What entries arriving for one partner posted and did."""

    groups: list[PostingGroup] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    refused: list[tuple[LedgerEntry, str]] = field(default_factory=list)
    refolds: int = 0  # times the history folded again
    refolded: int = 0  # entries folded again, in all


Used = Terms  # what an entry was accrued with (None: no terms)
# One entry of a re-folded history: the entry, its key, its terms, what it read of the
# pending lots, the volumes it read, whether it was applied (Timeline's lists, entry by entry).
Step = tuple[LedgerEntry, SortKey, Used, MoneyRead | None, list[VolumeRead] | None, bool]
# Kinds about a customer that neither read nor write its book: a book that differs may be
# carried over them (a usage fact earns from its revenue and the entry's share alone).
BOOK_BLIND = (UsageReported,)
# A book that differs in its ARR alone (a late expansion or contraction) may also be carried
# over later entries about its customer that read no ARR (only its currency, start, upfront
# money, milestones; and the volume, which the tier check covers), as an amount added to the
# recorded ARR: those that put the ARR plus a delta or leave it (ARR_KEEPING: the same
# difference after them), and those that set it to the same value in both folds
# (ARR_SETTING: a renewal sets the fact's ARR, a churn zero; no difference after them).
# Any other kind about the customer (a contraction floors its ARR at zero, a new deal
# reads whether it is active) stops the carry. Deals of kind expansion and renewal are
# expansions and renewals (accrual._deal).
ARR_KEEPING = (SubscriptionExpanded, RefundIssued, MilestoneAchieved)
ARR_SETTING = (SubscriptionRenewed, SubscriptionChurned)
# A customer's ARR carried over: (ARR now − recorded, the position in the history folded
# again of the entry that sets it alike in both folds (_NEVER: none), what it adds
# to the volume until then).
ArrCarry = tuple[Decimal, int, Volumes]


class Timeline:
    """One partner's applied entries in sort order, the current state, and snapshots."""

    __slots__ = ("partner_id", "state", "entries", "keys", "used", "reads", "volumes",
                 "applied", "snapshots", "floor")

    def __init__(self, partner_id: str, state: PartnerState | None = None,
                 floor: SortKey | None = None) -> None:
        """A new partner's timeline; or, with `state` and `floor`, one resumed from stored
        state whose earlier entries (up to `floor`, the last key applied) are not in memory:
        it can take late entries that sort after `floor` (see needs_history)."""
        self.partner_id = partner_id
        self.state: PartnerState = state if state is not None else new_state(partner_id)
        self.floor = floor
        self.entries: list[LedgerEntry] = []
        self.keys: list[SortKey] = []
        self.used: list[Used] = []
        # per entry: what its take read of the pending lots (None: nothing; shortcut.py)
        self.reads: list[MoneyRead | None] = []
        # per entry: the volumes it read to pick a tier multiplier (None: none; shortcut.py)
        self.volumes: list[list[VolumeRead] | None] = []
        self.applied: list[bool] = []  # per entry: not refused
        self.snapshots: dict[int, PartnerState] = {0: self.state}  # index -> state before it

    @classmethod
    def replayed(cls, partner_id: str, arrivals: Iterable[Sequence[LedgerEntry]],
                 books: Books) -> Timeline:
        """The timeline of entries already applied (after a restart), rebuilt by letting them
        arrive again as they arrived (the same groups, in the same order): the same states,
        the same payouts."""
        t = cls(partner_id)
        for group in arrivals:
            t.arrive(group, books)
        return t

    @property
    def last(self) -> SortKey | None:
        return self.keys[-1] if self.keys else self.floor

    def needs_history(self, entries: Iterable[LedgerEntry]) -> bool:
        """True when one of these entries sorts before what this resumed timeline holds in
        memory: its history must be read back (Timeline.of) before it can arrive."""
        floor = self.floor
        return floor is not None and any(sort_key(e) < floor for e in entries)

    def arrive(self, entries: Sequence[LedgerEntry], books: Books) -> Arrival:
        """Apply entries that arrived together (one batch's, for this partner), in sort
        order; returns what to post and record. Those that sort before what is already
        applied (late ones, the first of the sorted list) fold the history again once,
        together; the rest go on top."""
        out = Arrival()
        ordered = sorted(entries, key=sort_key)
        last = self.last
        late = 0
        if last is not None:
            while late < len(ordered) and sort_key(ordered[late]) < last:
                late += 1
        if late:
            self._fold_in(ordered[:late], books, out)
        for e in ordered[late:]:
            self._append(e, sort_key(e), books, out)
        return out

    def _append(self, e: LedgerEntry, k: SortKey, books: Books, out: Arrival) -> None:
        """The usual case, the one step of fold() inline (the hot path of live and rebuild)."""
        n = len(self.entries)
        if n % SNAPSHOT_EVERY == 0:
            self.snapshots[n] = self.state
            if len(self.snapshots) > MAX_SNAPSHOTS:
                self._thin()
        pair, why = terms_of(books, e)
        volumes: list[VolumeRead] = []
        if why is None:
            self.state, groups, effects, why = attempt(self.state, e, pair, None, volumes)
        if why is not None:
            out.refused.append((e, why))
        else:
            out.groups += groups
            if effects:
                out.effects += effects
        self.entries.append(e)
        self.keys.append(k)
        self.used.append(pair)
        money, volume = _read_by(e, groups, volumes, why is None)
        self.reads.append(money)
        self.volumes.append(volume)
        self.applied.append(why is None)

    def _fold_in(self, lates: list[LedgerEntry], books: Books, out: Arrival) -> None:
        """Fold the history again from the last snapshot before the first late entry: the
        entries before it once, then every later one twice in step, as recorded and with the
        late entries, until the two differ only where no later entry looks (core.shortcut).
        Each late entry's own groups are dated as it happened; the difference it made to the
        entries after it is posted as corrections, dated when the last of them was recorded."""
        keys = [sort_key(e) for e in lates]
        first = bisect_left(self.keys, keys[0])
        c = max(i for i in self.snapshots if i <= first)  # 0 always is one
        entries, used, old_keys = self.entries, self.used, self.keys
        recorded = self.state.payouts
        state = self.snapshots[c]
        for i in range(c, first):  # the same in both folds: folded once, as recorded
            state = attempt(state, entries[i], used[i], recorded)[0]
        # A late payout run as of a day on or before a run already applied does nothing
        # (a run never pays twice); any other late entry is applied for the first time.
        last_run = self.state.last_run
        seen = max(e.journal_seq for e in lates)  # what entries folded again may know
        # Two folds part here; each logs the customers whose books it puts (PartnerState.puts)
        # so that comparing them looks at those books only, not at every customer's.
        was, now = state.copy(), state.copy()
        was.puts, now.puts = was_log, now_log = [], []
        logged_was = logged_now = 0
        dirty: set[str] = set()  # customers whose books may differ between the two
        diff = None
        seg: list[Step] = []  # the new history
        snaps: dict[int, PartnerState] = {}
        before: dict[str, list[PostingGroup]] = {}
        after: dict[str, list[PostingGroup]] = {}
        folded: list[LedgerEntry] = []  # the late entries not refused
        rest = entries[first:]
        n, count = len(rest), len(lates)
        may_cut = not any(isinstance(e.fact, PlanRerated) for e in lates)  # re-rates all
        about: dict[str, list[int]] | None = None  # customer -> entries of rest about it
        arr: dict[str, ArrCarry] = {}
        tier_changes: dict[tuple[object, ...], tuple[int, int]] = {}  # shift, end -> scan
        money_changes: dict[tuple[tuple[str, date], ...], int] = {}  # latest lots -> same
        until = entries[-1].time.astimezone(UTC).date() if rest else None  # the last day
        j = li = 0  # the next entry of rest, and of lates
        cut = False
        while j < n or li < count:
            at = first + len(seg)
            if at > first and at % SNAPSHOT_EVERY == 0:
                snaps[at] = _unlogged(now)
            if li < count and (j == n or keys[li] < old_keys[first + j]):
                e = lates[li]
                li += 1
                stale = (isinstance(e.fact, PayoutRunRequested) and last_run is not None
                         and e.fact.as_of <= last_run)
                pair, why = terms_of(books, e, e.journal_seq)
                own: list[PostingGroup] = []
                read: list[VolumeRead] = []
                if why is None:
                    now, own, effects, why = attempt(now, e, pair, recorded if stale else None,
                                                     read)
                if why is not None:  # refused: it changes nothing
                    out.refused.append((e, why))
                else:
                    out.groups += own  # what the late fact itself did: dated as it happened
                    out.effects += effects
                    folded.append(e)
                seg.append((e, keys[li - 1], pair, *_read_by(e, own, read, why is None),
                            why is None))
                continue
            if li == count and (not folded or may_cut and j % 8 == 0):
                # Every late entry is in: may the fold stop here?
                dirty.update(now_log[logged_now:])
                dirty.update(was_log[logged_was:])
                logged_now, logged_was = len(now_log), len(was_log)
                a, b = now.customers, was.customers
                dirty = {c for c in dirty if a.get(c) != b.get(c)}  # equal again: dropped
                diff = difference(now, was, dirty, until)
                if not folded:  # all of them refused: nothing changed
                    cut = True
                    break
                if diff is not None:
                    if about is None:
                        about = _lookahead(rest)
                    if not diff.pending or self._takes_hold(diff.pending, first + j,
                                                            money_changes):
                        got = _arr_carries(diff, was, j, about, rest,
                                           self.applied[first:])
                        if got is not None and self._shifts_hold(diff.volume, got, first, j,
                                                                 tier_changes):
                            arr = got
                            cut = True
                            break
            e = rest[j]
            was, made_was = attempt(was, e, used[first + j], recorded)[:2]
            p = terms_of(books, e, seen)[0]
            read = []
            now, made_now, _, refused = attempt(now, e, p, recorded, read)
            seg.append((e, old_keys[first + j], p,
                        *_read_by(e, made_now, read, refused is None), refused is None))
            if not _same(made_was, made_now):
                before[e.entry_id], after[e.entry_id] = made_was, made_now
            j += 1
        if folded:
            when = max(e.recorded_at or e.time for e in lates)
            out.groups += _corrections(folded[0], folded, when, before, after,
                                       [e for e in rest[:j] if e.entry_id in before])
            out.effects.append(Effect(REFOLDED, folded[0], detail=(
                f"{first - c + len(seg)} entries folded again for {len(folded)} late")))
            out.refolds += 1
            out.refolded += first - c + len(seg)
        now.puts = was.puts = None  # (the folds are done: states derived from them log nothing)
        old_snaps = self.snapshots
        self.snapshots = {i: s for i, s in old_snaps.items() if i <= first}
        self.snapshots.update(snaps)
        if cut:
            assert diff is not None
            whole = diff
            if arr:  # (books carried whole: those no later entry reads)
                whole = Difference({c: b for c, b in diff.books.items() if c not in arr},
                                   diff.pending, diff.payable, diff.changes, diff.volume)
            for i, s in old_snaps.items():  # old i is new i + count; before rest[j] done above
                if i > first + j:
                    self.snapshots[i + count] = _with_arr(
                        carried(s, whole, self._day_before(i)), arr, i - first)
            self.snapshots[first + len(seg)] = now
            self.state = _with_arr(carried(self.state, whole, self._day_before(len(entries))),
                                   arr, n)
        else:
            self.state = now
        self.entries[first:first + j] = [s[0] for s in seg]
        self.keys[first:first + j] = [s[1] for s in seg]
        self.used[first:first + j] = [s[2] for s in seg]
        self.reads[first:first + j] = [s[3] for s in seg]
        self.volumes[first:first + j] = [s[4] for s in seg]
        self.applied[first:first + j] = [s[5] for s in seg]
        drops = _drops(arr, first + count) if cut else []
        if cut and (diff.volume or drops):  # later entries now read the volume so moved
            self._shift_volumes(first + len(seg), diff.volume, drops)
        self._thin()

    def _tiers_hold(self, shift: Volumes, at: int,
                    known: dict[tuple[object, ...], tuple[int, int]],
                    end: int | None = None) -> bool:
        """No entry from `at` on (before `end`; by default to the end) of the recorded
        history would pick another tier multiplier were the volume moved by `shift`. One
        scan per shift and end (`known`: from where it scanned, and the last position where
        one would), so asking again as the fold goes on is cheap."""
        key = (*sorted(shift.items()), end)
        hit = known.get(key)
        if hit is None or at < hit[0]:  # (scanned from further on: scan again)
            hit = known[key] = (at, tier_change_at(self.volumes, shift, at, end))
        return at > hit[1]

    def _shifts_hold(self, volume: Volumes, arr: dict[str, ArrCarry], first: int, j: int,
                     known: dict[tuple[object, ...], tuple[int, int]]) -> bool:
        """_tiers_hold from rest[j] (entries[first + j]) on, the shift being `volume` up to
        and including the entry that sets a carried ARR alike (it reads the volume before it
        applies), and without that customer's term after it."""
        start, shift = first + j, volume
        for at, term in _drops(arr, first):
            if shift and not self._tiers_hold(shift, start, known, at + 1):
                return False
            start, shift = at + 1, _minus(shift, term)
            if shift is None:
                return False
        return not shift or self._tiers_hold(shift, start, known)

    def _takes_hold(self, pending: Lots, at: int,
                    known: dict[tuple[tuple[str, date], ...], int]) -> bool:
        """No take from `at` on (in the recorded history) would take otherwise were the
        pending lots moved by `pending`. One scan per latest lot per currency (all that
        money_change_at looks at), cached in `known` like _tiers_hold's."""
        key = tuple(sorted((c, max(lots)) for c, lots in pending.items() if lots))
        last = known.get(key)
        if last is None:
            last = known[key] = money_change_at(self.reads, pending, at)
        return at > last

    def _shift_volumes(self, start: int, shift: Volumes,
                       drops: list[tuple[int, Volumes]]) -> None:
        """Move the volumes read from `start` on by `shift`, less each dropped term after
        its position (_drops: where a carried ARR stops differing)."""
        vols = self.volumes
        d = 0
        for k in range(start, len(vols)):
            while d < len(drops) and drops[d][0] < k:
                shift = _minus(shift, drops[d][1]) or {}  # (checked exact in _shifts_hold)
                d += 1
            reads = vols[k]
            if reads is not None and any(r[0] in shift for r in reads):
                vols[k] = shifted(reads, shift)

    def _day_before(self, i: int) -> date | None:
        """The day of the last entry applied before entries[i] (the day to which the state
        before it has matured); called before the late entry is inserted."""
        for j in range(i - 1, -1, -1):
            if self.applied[j]:
                return self.entries[j].time.astimezone(UTC).date()
        return None

    def _thin(self) -> None:
        """Keep snapshots dense near the end of the history, where late entries land, and
        sparser further back: the gap kept grows with the distance from the end (at least
        SNAPSHOT_EVERY entries, at most a 32nd of the distance), about 32 per doubling."""
        if len(self.snapshots) <= MAX_SNAPSHOTS:
            return
        n = len(self.entries)
        kept: dict[int, PartnerState] = {}
        last = None
        for i in sorted(self.snapshots, reverse=True):
            if i == 0 or last is None or last - i >= max(SNAPSHOT_EVERY, (n - i) // 32):
                kept[i] = self.snapshots[i]
                last = i
        self.snapshots = kept

def _unlogged(state: PartnerState) -> PartnerState:
    """A copy of a state that logs no puts (a snapshot: later folds start from it)."""
    s = state.copy()
    s.puts = None
    return s


def _read_by(e: LedgerEntry, groups: list[PostingGroup], volumes: list[VolumeRead],
             applied: bool) -> tuple[MoneyRead | None, list[VolumeRead] | None]:
    """What an entry read, as the timeline keeps it: of the pending lots (its postings),
    and the volumes it read to pick a tier; None for each it did not read, or if refused."""
    if not applied:
        return None, None
    return money_read(groups, e), volumes or None


def _lookahead(rest: list[LedgerEntry]) -> dict[str, list[int]]:
    """Per customer, the positions of the entries that read or write its book (kinds in
    BOOK_BLIND do neither: a book that differs may be carried over them)."""
    about: dict[str, list[int]] = {}
    for j, e in enumerate(rest):
        if e.customer_id is not None and not isinstance(e.fact, BOOK_BLIND):
            about.setdefault(e.customer_id, []).append(j)
    return about


KEEPS, SETS, READS = "keeps", "sets", "reads"  # what an entry does with its customer's ARR


def _arr_role(e: LedgerEntry) -> str:
    """KEEPS a difference in its customer's ARR alone, SETS the ARR alike in both folds, or
    may READ it (ARR_KEEPING, ARR_SETTING)."""
    f = e.fact
    if isinstance(f, DealClosed):
        return KEEPS if f.kind == "expansion" else SETS if f.kind == "renewal" else READS
    return KEEPS if isinstance(f, ARR_KEEPING) else SETS if isinstance(f, ARR_SETTING) else READS


def _arr_carries(diff: Difference, was: PartnerState, j: int, about: dict[str, list[int]],
                 rest: list[LedgerEntry], applied: list[bool]) -> dict[str, ArrCarry] | None:
    """The books of diff that later entries (from rest[j]) read, each carried as its ARR
    difference; None when one of them may read more than that (or a sum is not exact).
    `applied`: rest's, as recorded (a refused renewal sets nothing)."""
    out: dict[str, ArrCarry] = {}
    for cid, book in diff.books.items():
        at = about.get(cid)
        k = bisect_left(at, j) if at else 0
        if not at or k == len(at):
            continue  # no later entry reads it: carried whole
        old = was.customers.get(cid)
        if (old is None or old.arr.as_tuple().exponent != book.arr.as_tuple().exponent
                or replace_book(old, arr=book.arr) != book):
            return None  # (same exponents: the carried sums are the folded ones, digit for digit)
        stop = _NEVER
        for pos in at[k:]:
            role = _arr_role(rest[pos])
            if role == READS or role == SETS and not applied[pos]:
                return None
            if role == SETS:
                stop = pos
                break
        try:
            delta = EXACT.subtract(book.arr, old.arr)
            term = {book.currency: EXACT.multiply(delta, book.share)} if book.active else {}
        except (Inexact, InvalidOperation):
            return None
        out[cid] = (delta, stop, {c: v for c, v in term.items() if v})
    return out


def _drops(arr: dict[str, ArrCarry], offset: int) -> list[tuple[int, Volumes]]:
    """(position + offset, volume term) of each carried ARR that is set alike, in order."""
    return sorted(((stop + offset, term) for _, stop, term in arr.values() if term
                   and stop < _NEVER), key=lambda x: x[0])


_NEVER = 1 << 62


def _minus(shift: Volumes, term: Volumes) -> Volumes | None:
    """shift − term, exactly (zeros dropped); None when not exact."""
    out = dict(shift)
    try:
        for c, v in term.items():
            out[c] = EXACT.subtract(out.get(c, 0), v)
    except (Inexact, InvalidOperation):
        return None
    return {c: v for c, v in out.items() if v}


def _with_arr(state: PartnerState, arr: dict[str, ArrCarry], at: int) -> PartnerState:
    """A carried state before rest[at] (at = len(rest): after all), with each carried ARR
    not yet set alike by then added to (the state is a fresh copy: changed in place)."""
    for cid, (delta, stop, _) in arr.items():
        if stop >= at:
            book = state.customers[cid]
            state.put(replace_book(book, arr=EXACT.add(book.arr, delta)))
    return state


# --- correction groups ----------------------------------------------------------------------

LegKey = tuple[str, str, str, object]  # account, bucket, currency, available_on
GroupKey = tuple[str | None, str | None, str, str]  # customer, deal, rule id, rule kind


def _nets(groups: Iterable[PostingGroup], into: dict[GroupKey, dict[LegKey, Decimal]],
          sign: int) -> None:
    for g in groups:
        x = g.explanation
        legs = into.setdefault((g.customer_id, g.deal_id, x.rule_id, x.rule_kind), {})
        for leg in g.legs:
            k = (leg.account, leg.bucket, leg.amount.currency, leg.available_on)
            legs[k] = legs.get(k, 0) + sign * leg.amount.amount


def _corrections(cause: LedgerEntry, late: list[LedgerEntry], when: datetime,
                 before: dict[str, list[PostingGroup]], after: dict[str, list[PostingGroup]],
                 old: list[LedgerEntry]) -> list[PostingGroup]:
    """One group per (customer, rule) whose net the re-fold changed: the difference, legs
    balancing because each original group balanced. Its sentence names the entries whose
    figures changed, their figures before and after, and the late fact."""
    diff: dict[GroupKey, dict[LegKey, Decimal]] = {}
    changed: dict[GroupKey, list[LedgerEntry]] = {}
    for e in old:
        was, now = before[e.entry_id], after[e.entry_id]
        if _same(was, now):
            continue
        mine: dict[GroupKey, dict[LegKey, Decimal]] = {}
        _nets(now, mine, 1)
        _nets(was, mine, -1)
        for key, legs in mine.items():
            if any(legs.values()):
                changed.setdefault(key, []).append(e)
                into = diff.setdefault(key, {})
                for k, a in legs.items():
                    into[k] = into.get(k, 0) + a
    why = _late_text(late)
    out: list[PostingGroup] = []
    for n, (key, legs) in enumerate(sorted(diff.items(), key=lambda kv: tuple(map(str, kv[0])))):
        legs = {k: a for k, a in legs.items() if a}
        if not legs:
            continue
        customer, deal, rule_id, kind = key
        made = tuple(make_leg(acct, bucket, make_money(a, cur), on)
                     for (acct, bucket, cur, on), a in sorted(legs.items(), key=_leg_order))
        sentence = (f"Correction of {_entries_text(changed[key], rule_id)}"
                    f"{_rerated_text(changed[key], before, after, rule_id)}: "
                    f"{_figures_text(legs)}; {why}")
        out.append(make_group(
            f"{cause.entry_id}:correction:{n}", cause.entry_id, cause.journal_seq,
            cause.event_id, cause.fact.type, when, cause.partner_id, customer, deal,
            make_explanation(rule_id, kind, sentence, None, None, None, None, None, None, None),
            made))
    return out


def _same(a: list[PostingGroup], b: list[PostingGroup]) -> bool:
    if len(a) != len(b):
        return False
    return all(x.legs == y.legs and x.customer_id == y.customer_id
               and x.explanation.rule_id == y.explanation.rule_id for x, y in zip(a, b, strict=True))


def _leg_order(item: tuple[LegKey, Decimal]) -> tuple[str, ...]:
    return tuple(map(str, item[0]))


def _entries_text(entries: list[LedgerEntry], rule_id: str) -> str:
    names = [f"{e.fact.type} {e.customer_id or e.event_id} of {e.time.date().isoformat()}"
             for e in entries[:3]]
    more = f" and {len(entries) - 3} more" if len(entries) > 3 else ""
    return f"{', '.join(names)}{more} (rule {rule_id})"


def _rerated_text(entries: list[LedgerEntry], before: dict[str, list[PostingGroup]],
                  after: dict[str, list[PostingGroup]], rule_id: str) -> str:
    """", re-rated ×1.25 (was ×1)" when the volume multiplier is what changed."""
    def multipliers(groups: list[PostingGroup]) -> set[Decimal]:
        return {g.explanation.multiplier for g in groups
                if g.explanation.rule_id == rule_id and g.explanation.multiplier is not None}
    was = set().union(*(multipliers(before[e.entry_id]) for e in entries))
    now = set().union(*(multipliers(after[e.entry_id]) for e in entries))
    if len(was) == 1 and len(now) == 1 and was != now:
        return f", re-rated ×{now.pop().normalize():f} (was ×{was.pop().normalize():f})"
    return ""


def _figures_text(legs: dict[LegKey, Decimal]) -> str:
    parts = []
    for (acct, bucket, cur, on), a in sorted(legs.items(), key=_leg_order):
        if acct.startswith("partner:"):
            due = f" due {on.isoformat()}" if on is not None else ""  # type: ignore[attr-defined]
            parts.append(f"{bucket}{due} {'+' if a > 0 else ''}{round_money(a, cur):,f} {cur}")
    return ", ".join(parts) or "company side only"


def _late_text(late: list[LedgerEntry]) -> str:
    first = late[0]
    if isinstance(first.fact, PlanRerated):
        f = first.fact
        return (f"plan {f.plan_id} version {f.version} was published retroactively, from "
                f"{(first.time.date() + timedelta(days=1)).isoformat()}")
    name = first.deal_id if first.fact.type == "deal.closed" else (
        first.customer_id or first.event_id)
    what = f"{first.fact.type} {name} of {first.time.date().isoformat()}"
    if len(late) > 1:
        what += f" and {len(late) - 1} more"
    return f"{what} was recorded late"
