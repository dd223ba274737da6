"""Poison isolation (trailpay.adapters.isolation), driven with plain lists: a failing batch
is bisected down to the records that fail alone; those are dead-lettered after one retry
and the rest goes on, in order; infrastructure trouble dead-letters nothing."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailpay.adapters.isolation import STRIKES, Isolation, Stall, Stalls, describe, halves


class Bad(Exception):
    pass


class Harness:
    """A handler that fails any piece holding a bad item (or while `down`), a poison
    callback and a health check, each keeping what it saw."""

    def __init__(self, bad: set[int] = frozenset(), *, threshold: int = 5) -> None:
        self.bad = set(bad)
        self.down = 0              # health checks that answer False before it recovers
        self.flaky: dict[int, int] = {}  # item -> failures left before it succeeds
        self.poison_fails = 0      # poison callbacks that raise before one succeeds
        self.calls: list[list[int]] = []
        self.failed_calls = 0
        self.committed: list[int] = []
        self.poisoned: list[tuple[int, str]] = []
        self.trace: list[tuple[str, int]] = []  # ("ok" | "poison", item), in order
        self.stall = Stall(threshold=threshold)

    async def handle(self, piece: list[int]) -> None:
        self.calls.append(list(piece))
        if self.down:
            self.failed_calls += 1
            raise ConnectionRefusedError("database is down")
        for item in piece:
            if item in self.bad:
                self.failed_calls += 1
                raise Bad(f"cannot handle {item}")
            if self.flaky.get(item, 0) > 0:
                self.flaky[item] -= 1
                self.failed_calls += 1
                raise TimeoutError(f"transient on {item}")
        self.committed += piece
        self.trace += [("ok", i) for i in piece]

    async def poison(self, item: int, exc: BaseException) -> None:
        if self.poison_fails:
            self.poison_fails -= 1
            raise OSError("dead-letter table unavailable")
        self.poisoned.append((item, describe(exc)))
        self.trace.append(("poison", item))

    async def healthy(self) -> bool:
        if self.down:
            self.down -= 1
            return False
        return True

    def isolation(self) -> Isolation[int]:
        return Isolation(handle=self.handle, poison=self.poison, healthy=self.healthy,
                         key=lambda i: i, stall=self.stall, retry_delay=0.0,
                         backoff_min=0.0, backoff_max=0.0, name="test")


async def run(h: Harness, items: list[int]) -> bool:
    return await h.isolation().run(items, asyncio.Event())


def first_seen(trace: list[tuple[str, int]]) -> list[int]:
    seen: dict[int, None] = {}
    for _, item in trace:
        seen.setdefault(item, None)
    return list(seen)


# --- halves ----------------------------------------------------------------------------------

def test_halves_split_in_order_and_refuse_a_single_item():
    assert halves([1, 2, 3, 4, 5]) == ([1, 2], [3, 4, 5])
    assert halves([1, 2]) == ([1], [2])
    with pytest.raises(ValueError):
        halves([1])


def test_describe_is_one_bounded_line():
    assert describe(Bad("a\nb")) == "Bad: a b"
    assert describe(KeyError()) == "KeyError"
    assert len(describe(Bad("x" * 10_000), 100)) == 100


# --- isolation -------------------------------------------------------------------------------

async def test_a_clean_batch_is_handled_in_one_call():
    h = Harness()
    assert await run(h, list(range(100)))
    assert h.calls == [list(range(100))] and h.poisoned == []


async def test_one_poison_record_is_dead_lettered_and_everything_else_goes_on_in_order():
    h = Harness({57})
    items = list(range(100))
    assert await run(h, items)
    assert [p for p, _ in h.poisoned] == [57]
    assert h.poisoned[0][1] == "Bad: cannot handle 57"
    assert sorted(set(h.committed)) == [i for i in items if i != 57]
    assert first_seen(h.trace) == items  # nothing after 57 before 57 was dead-lettered
    # The whole batch, one failing half per level down to 57, then 57 alone once more.
    assert h.failed_calls == 1 + math.ceil(math.log2(100)) + (STRIKES - 1)


async def test_a_batch_of_one_poison_record_is_retried_once_then_dead_lettered():
    h = Harness({7})
    assert await run(h, [7])
    assert h.calls == [[7], [7]] and [p for p, _ in h.poisoned] == [7]
    assert h.stall.failures == 0 and h.stall.seconds() == 0  # progress made: no stall


async def test_every_record_poison_and_neighbours_kept():
    h = Harness({0, 1, 2, 9})
    assert await run(h, list(range(10)))
    assert [p for p, _ in h.poisoned] == [0, 1, 2, 9]
    assert first_seen(h.trace) == list(range(10))


async def test_a_record_that_fails_once_alone_is_retried_not_dead_lettered():
    h = Harness()
    h.flaky[3] = 2  # fails in the whole batch, then alone, then succeeds
    assert await run(h, list(range(8)))
    assert h.poisoned == []
    assert sorted(set(h.committed)) == list(range(8))


async def test_infrastructure_down_retries_the_same_batch_whole_and_dead_letters_nothing():
    h = Harness()
    h.down = 6  # six failures with an unhealthy database, then it is back
    assert await run(h, list(range(50)))
    assert h.poisoned == []
    assert all(call == list(range(50)) for call in h.calls)  # never bisected
    assert len(h.calls) == 7 and h.committed == list(range(50))


async def test_infrastructure_down_while_a_poison_record_is_alone_does_not_count_against_it():
    h = Harness({4}, threshold=100)

    async def healthy() -> bool:
        # Unhealthy when the record fails alone, the first three times.
        return h.calls[-1] != [4] or sum(c == [4] for c in h.calls) > 3

    isolation = h.isolation()
    isolation.healthy = healthy
    assert await isolation.run(list(range(8)), asyncio.Event())
    assert [p for p, _ in h.poisoned] == [4]
    # Three failures alone while unhealthy, then one healthy failure and one retry.
    assert sum(c == [4] for c in h.calls) == 3 + STRIKES


async def test_a_poison_record_that_cannot_be_dead_lettered_stalls_and_is_never_skipped():
    h = Harness({2}, threshold=4)
    h.poison_fails = 5
    seen: list[bool] = []

    async def poison(item: int, exc: BaseException) -> None:
        seen.append(h.stall.stalled)
        await Harness.poison(h, item, exc)

    isolation = h.isolation()
    isolation.poison = poison
    assert await isolation.run([1, 2, 3], asyncio.Event())
    assert [p for p, _ in h.poisoned] == [2]  # recorded in the end, never dropped
    assert True in seen  # readiness reported the stall while it could not be recorded
    assert first_seen(h.trace) == [1, 2, 3]
    assert not h.stall.stalled and h.stall.report() is None


async def test_stop_during_an_outage_returns_false_without_dead_lettering():
    h = Harness()
    h.down = 10**9
    stop = asyncio.Event()
    isolation = h.isolation()
    isolation.backoff_min = isolation.backoff_max = 0.01

    async def stop_soon() -> None:
        await asyncio.sleep(0.05)
        stop.set()

    stopper = asyncio.create_task(stop_soon())
    assert await asyncio.wait_for(isolation.run([1, 2, 3], stop), 5) is False
    await stopper
    assert h.poisoned == [] and h.committed == []
    assert h.stall.stalled and h.stall.report()["failures"] >= 5


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=1, max_value=300), data=st.data())
async def test_any_poison_set_is_isolated_exactly_in_order(n, data):
    bad = data.draw(st.sets(st.integers(min_value=0, max_value=n - 1), max_size=min(n, 12)))
    h = Harness(bad)
    assert await run(h, list(range(n)))
    assert [p for p, _ in h.poisoned] == sorted(bad)
    assert set(h.committed) == set(range(n)) - bad
    assert first_seen(h.trace) == list(range(n))
    # Each poison record costs at most one failed piece per level, plus its retry.
    assert h.failed_calls <= 1 + len(bad) * (math.ceil(math.log2(n)) + STRIKES)


# --- stall -----------------------------------------------------------------------------------

def test_stall_counts_failures_of_one_piece_and_clears_on_progress():
    now = [100.0]
    stall = Stall(threshold=3, clock=lambda: now[0])
    assert stall.seconds() == 0 and stall.report() is None
    stall.failed("t/0@5", Bad("x"))
    now[0] = 101.5
    stall.failed("t/0@5", Bad("x"))
    assert stall.failures == 2 and not stall.stalled and stall.seconds() == 1.5
    stall.failed("t/0@6", Bad("y"))  # another piece starts its own count...
    assert stall.failures == 1
    stall.failed("t/0@6", Bad("y"))
    stall.failed("t/0@6", Bad("y"))
    now[0] = 110.0
    assert stall.stalled  # ...and the clock runs from the first failure since progress
    assert stall.report() == {"piece": "t/0@6", "failures": 3, "seconds": 10.0,
                              "error": "Bad: y"}
    stall.progressed()
    assert not stall.stalled and stall.seconds() == 0 and stall.report() is None


def test_lanes_stall_on_their_own_and_read_as_one():
    """One lane's progress never clears another lane's stuck record; the service reads
    stalled while any lane is, for as long as the longest."""
    now = [0.0]
    a, b = Stall(threshold=2, clock=lambda: now[0]), Stall(threshold=2, clock=lambda: now[0])
    stalls = Stalls([a, b])
    a.failed("t/0@1", Bad("x"))
    now[0] = 4.0
    a.failed("t/0@1", Bad("x"))
    b.progressed()  # the other lane goes on
    assert stalls.stalled and stalls.failures == 2 and stalls.seconds() == 4.0
    assert stalls.report() == {"piece": "t/0@1", "failures": 2, "seconds": 4.0, "error": "Bad: x"}
    a.progressed()
    assert not stalls.stalled and stalls.report() is None


def test_a_polled_batch_splits_by_partition_into_lanes_that_share_none():
    from aiokafka import TopicPartition

    from trailpay.adapters.consume import split

    polled = {TopicPartition("t", p): [f"{p}:{n}" for n in range(3)] for p in range(5)}
    shares = split(polled, 2)  # type: ignore[arg-type]
    assert shares == [[f"{p}:{n}" for p in (0, 2, 4) for n in range(3)],
                      [f"{p}:{n}" for p in (1, 3) for n in range(3)]]
    assert split(polled, 1) == [[r for rs in polled.values() for r in rs]]  # type: ignore[arg-type]
