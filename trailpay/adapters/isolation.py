"""Poison isolation for the batch consumers: one bad record never holds back the others.

A batch whose handler raises is retried in halves, down to single records; the
handlers are idempotent (keyed on event and entry ids in the effect's own
transaction), so re-handling a half that already committed is harmless. A record
that still fails alone after one retry is handed to the service's poison callback,
which dead-letters it with the reason, and the batch goes on past it.

A record is not to blame when the infrastructure is down: every failure asks the
service whether its database (and broker) answer. When they do not, the same piece
is retried with backoff, whole, for as long as it takes, and nothing is
dead-lettered. `Stall` keeps count, for /readyz, the metrics and the alert.

Nothing here knows Kafka or SQL: the consume loop passes records, the handler, the
health check and the poison callback, and the unit tests pass plain lists.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# A record fails alone, is retried once after a pause, and is poison if it fails again.
STRIKES = 2


def halves(items: Sequence[T]) -> tuple[list[T], list[T]]:
    """Split a piece of two or more items in two, in order (the left half first)."""
    if len(items) < 2:
        raise ValueError("only a piece of two or more items can be halved")
    mid = len(items) // 2
    return list(items[:mid]), list(items[mid:])


def describe(exc: BaseException, limit: int = 500) -> str:
    """An exception as a one-line reason: its type and message, bounded."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class Stall:
    """How long a consumer has been failing without progress, and on what.

    `failed` counts consecutive failures of one piece (a batch, a half, a record);
    a new piece starts a new count, and any progress (a piece handled, a poison
    record dead-lettered) clears it. The consumer is stalled once one piece has
    failed `threshold` times in a row: bisecting and the one retry of a poison
    record never get there; only trouble that retrying cannot fix does.
    """

    threshold: int = 5
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    piece: Hashable = None
    since: float | None = None  # first failure since the last progress
    error: str = ""

    def failed(self, piece: Hashable, exc: BaseException) -> None:
        if piece != self.piece:
            self.piece, self.failures = piece, 0
        self.failures += 1
        if self.since is None:
            self.since = self.clock()
        self.error = describe(exc, 300)

    def progressed(self) -> None:
        self.failures, self.piece, self.since, self.error = 0, None, None, ""

    @property
    def stalled(self) -> bool:
        return self.failures >= self.threshold

    def seconds(self) -> float:
        """Seconds since the first failure without progress (0 while progressing)."""
        return 0.0 if self.since is None else max(self.clock() - self.since, 0.0)

    def report(self) -> dict[str, Any] | None:
        """What /readyz says about a stall, or None when there is none."""
        if not self.stalled:
            return None
        return {"piece": str(self.piece), "failures": self.failures,
                "seconds": round(self.seconds(), 3), "error": self.error}


@dataclass
class Stalls:
    """The stalls of a consumer's lanes read as one, for /readyz, the metrics and the alert:
    stalled when any lane is, for as long as the longest (each lane counts its own pieces,
    so one lane's progress never hides another's stuck record)."""

    lanes: list[Stall]

    @property
    def stalled(self) -> bool:
        return any(s.stalled for s in self.lanes)

    @property
    def failures(self) -> int:
        return max(s.failures for s in self.lanes)

    def seconds(self) -> float:
        return max(s.seconds() for s in self.lanes)

    def report(self) -> dict[str, Any] | None:
        worst = max(self.lanes, key=lambda s: (s.stalled, s.seconds()))
        return worst.report()


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, or wake early when asked to stop; False when stopping."""
    if stop.is_set():
        return False
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return True
    return False


@dataclass
class Isolation(Generic[T]):
    """Handle a batch, isolating the records that fail on their own (see the module doc).

    `key` names a record (topic, partition, offset) in logs and in the stall count;
    `healthy` says whether the database and broker answer; `poison` dead-lettered a
    record when it returns (when it raises, the record is tried again later).
    """

    handle: Callable[[list[T]], Awaitable[None]]
    poison: Callable[[T, BaseException], Awaitable[None]]
    healthy: Callable[[], Awaitable[bool]]
    key: Callable[[T], Hashable]
    stall: Stall = field(default_factory=Stall)
    retry_delay: float = 0.5   # before a record that failed alone is tried once more
    backoff_min: float = 0.1   # infrastructure trouble: waits double from this...
    backoff_max: float = 5.0   # ...up to this
    name: str = "consumer"

    def _piece(self, piece: list[T]) -> Hashable:
        if len(piece) == 1:
            return self.key(piece[0])
        return (self.key(piece[0]), self.key(piece[-1]), len(piece))

    async def run(self, items: Sequence[T], stop: asyncio.Event) -> bool:
        """Handle every item or dead-letter it, in order; False when stopped before the end
        (then nothing after the pieces already handled is known to be done)."""
        pieces: deque[list[T]] = deque([list(items)] if items else [])
        backoff = self.backoff_min
        strikes = 0  # failures of the single record at the head while all was healthy
        while pieces:
            piece = pieces[0]
            try:
                await self.handle(piece)
            except Exception as exc:  # noqa: BLE001 - isolate, dead-letter or wait; see above
                ident = self._piece(piece)
                fresh = ident != self.stall.piece
                self.stall.failed(ident, exc)
                if fresh:
                    strikes = 0
                if not await self.healthy():
                    log.warning("%s: %d record(s) at %s failed while the database or broker "
                                "is unavailable; retrying in %.1fs: %s", self.name, len(piece),
                                ident, backoff, describe(exc))
                    if not await pause(stop, backoff):
                        return False
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
                if len(piece) > 1:
                    log.warning("%s: a batch of %d failed (%s); bisecting", self.name,
                                len(piece), describe(exc))
                    pieces.popleft()
                    left, right = halves(piece)
                    pieces.extendleft((right, left))
                    continue
                strikes += 1
                if strikes < STRIKES:
                    log.warning("%s: record %s failed alone; one retry in %.1fs: %s", self.name,
                                ident, self.retry_delay, describe(exc))
                    if not await pause(stop, self.retry_delay):
                        return False
                    continue
                try:
                    await self.poison(piece[0], exc)
                except Exception as failure:  # noqa: BLE001 - retried: never skip unrecorded
                    self.stall.failed(ident, failure)
                    log.exception("%s: could not dead-letter poison record %s; retrying in "
                                  "%.1fs", self.name, ident, backoff)
                    if not await pause(stop, backoff):
                        return False
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
                log.error("%s: record %s dead-lettered as poison: %s", self.name, ident,
                          describe(exc))
            pieces.popleft()
            self.stall.progressed()
            backoff, strikes = self.backoff_min, 0
        return True
