"""Records across partitions in the order they were sent (design §4, issue 15).

A consumer that owns several partitions of trailpay.events reads each as fast as the
broker hands it over. A fetch returns up to `max_partition_fetch_bytes` of one partition
(16 MiB here), and a poll drains partitions one after the other. So with a backlog, one
partition is journaled months of event time ahead of another. A partner's entries then
reach the accrual out of order, and it folds their history again for facts that were
sent in order: 189 re-folds, 27,896 entries folded again, in the quick bench's in-order
phase, about half of the accrual's CPU.

The fix is Kafka Streams' (`max.task.idle.ms`): hold what was polled, and hand out only
the records stamped no later than every owned partition has reached. The stamp is the
Kafka record timestamp, set when the producer sent it (trailpay's own producers stamp
all the records of one send alike). A partition that is empty here but has records on
the broker holds the others back for at most `patience` seconds, one that has nothing
more for at most `idle` (a producer writes one partition after another: the rest of a
send may be a moment behind). Within a partition the order is the broker's, always.

The stamp is the send time, not the event time: a fact sent late (a backfill) stays
late, as it should. Alignment only changes which records go together, never what a
record does. Money is the same either way (design §4: any arrival order gives the same
balances); this saves the re-folds that partitioned reading would otherwise cause.

No Kafka client here: records need `.timestamp` (ms) and `.offset`; partitions are any
hashable key. The consume loop polls, pauses partitions that hold too much, and commits what it took.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class Stamped(Protocol):
    timestamp: int  # ms, set by the producer (or the broker: LogAppendTime)
    offset: int


R = TypeVar("R", bound=Stamped)
P = TypeVar("P", bound=Hashable)


@dataclass
class Aligner(Generic[P, R]):
    """Polled records held per partition until the partitions they are aligned with
    have caught up to their timestamps.

    `patience`: seconds a partition with records on the broker not yet handed over may
    hold the others back; `idle`: seconds one with none may (a producer sends a partition
    at a time: its next records may be a moment behind the others'). `full`: records
    held for one partition beyond which the caller should stop fetching it (pause)."""

    patience: float = 0.5
    idle: float = 0.02
    full: int = 20_000
    clock: Callable[[], float] = time.monotonic
    held: dict[P, deque[R]] = field(default_factory=dict)
    top: dict[P, int] = field(default_factory=dict)  # the latest timestamp held, by partition
    waiting_since: float | None = None  # since when something held could not go

    def add(self, polled: dict[P, list[R]]) -> None:
        """Hold polled records. A partition whose new records do not follow
        those held (the consumer was moved back to its committed offset: a rebalance gave the
        partition away and back) starts over from them, so nothing is held twice."""
        for p, records in polled.items():
            if not records:
                continue
            q = self.held.get(p)
            if q and records[0].offset <= q[-1].offset:
                self.drop([p])
                q = None
            if q is None:
                q = self.held[p] = deque()
            q.extend(records)
            latest = max(r.timestamp for r in records)
            self.top[p] = max(self.top.get(p, latest), latest)

    def drop(self, partitions: Iterable[P]) -> None:
        """Forget what is held for partitions this consumer no longer owns: their next
        owner reads them from the committed offset."""
        for p in partitions:
            self.held.pop(p, None)
            self.top.pop(p, None)
        if not self.held:
            self.waiting_since = None

    def count(self, p: P) -> int:
        return len(self.held.get(p, ()))

    def take(self, owned: Iterable[P], behind: Callable[[P], bool], limit: int
             ) -> dict[P, list[R]]:
        """At most `limit` records, by partition, in timestamp order across partitions, up
        to a mark that every owned partition has reached:

        - one that holds records: its latest held timestamp, or just before it where it has
          more on the broker (`behind`: records of the same millisecond may be among them);
        - one that holds nothing but is behind: before anything, for `patience` seconds;
        - one that holds nothing and has nothing more: before anything, for `idle` seconds
          (a producer's records for it may be on their way), then no bound.

        A wait is counted from the first call that could release nothing. Once the waits
        are over, the partition whose latest record is earliest gives all it holds (up to
        `limit`): a call that does not wait makes progress, even where a partition's
        timestamps go backwards."""
        held = self.held
        if not held:
            self.waiting_since = None
            return {}
        now = self.clock()
        waited = 0.0 if self.waiting_since is None else now - self.waiting_since
        mark = min(self.top[p] for p in held)
        for p in owned:
            if p in held:
                if waited < self.patience and behind(p):
                    mark = min(mark, self.top[p] - 1)
            elif waited < (self.patience if behind(p) else self.idle):
                mark = -1
                break
        out: dict[P, list[R]] = {}
        n = 0
        # Merge by timestamp (ties by partition order), stopping at the mark or the limit.
        heads: list[tuple[int, int, Any]] = [
            (q[0].timestamp, i, p) for i, (p, q) in enumerate(held.items())]
        heapq.heapify(heads)
        while heads and n < limit:
            ts, i, p = heads[0]
            if ts > mark:
                break
            q = held[p]
            out.setdefault(p, []).append(q.popleft())
            n += 1
            if q:
                heapq.heapreplace(heads, (q[0].timestamp, i, p))
            else:
                heapq.heappop(heads)
                del held[p], self.top[p]
        if out or not held:
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = now
        return out

    def wait(self, longest: float) -> float:
        """How long the consumer may wait for new records before calling `take` again:
        `longest`, or less where one of take's waits ends sooner."""
        if self.waiting_since is None:
            return longest
        waited = self.clock() - self.waiting_since
        for end in sorted((self.idle, self.patience)):
            if waited < end:
                return min(longest, end - waited)
        return 0.0
