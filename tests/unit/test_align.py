"""Aligning partitions by send time (trailpay.adapters.align), driven with plain records:
nothing is lost, doubled or reordered within a partition; a record goes only once every
owned partition has reached its timestamp (or the waits are over); a call that does not
wait makes progress."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from trailpay.adapters.align import Aligner


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    timestamp: int


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _aligner(**kw) -> tuple[Aligner, Clock]:
    clock = Clock()
    return Aligner(patience=0.5, idle=0.02, clock=clock, **kw), clock


def _polls(data) -> list[dict[int, list[Rec]]]:
    """Several partitions' records (timestamps rising by steps, sometimes back a little),
    handed over in polls of random sizes."""
    parts = data.draw(st.integers(1, 4))
    streams = {}
    for p in range(parts):
        stamps = data.draw(st.lists(st.integers(-2, 5), max_size=30))
        ts, recs = 1000, []
        for i, step in enumerate(stamps):
            ts = max(0, ts + step)
            recs.append(Rec(p, i, ts))
        streams[p] = recs
    polls = []
    while any(streams.values()):
        poll = {}
        for p, recs in streams.items():
            n = data.draw(st.integers(0, len(recs)))
            if n:
                poll[p], streams[p] = recs[:n], recs[n:]
        polls.append(poll)
    return polls


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(1, 50))
def test_every_record_goes_once_in_partition_order(data, limit):
    aligner, clock = _aligner()
    polls = _polls(data)
    owned = {p for poll in polls for p in poll} or {0}
    out: dict[int, list[Rec]] = {p: [] for p in owned}
    sent = {p: [] for p in owned}
    for poll in polls:
        aligner.add(poll)
        for p, recs in poll.items():
            sent[p] += recs
        for p, recs in aligner.take(owned, lambda p: False, limit).items():
            out[p] += recs
    while aligner.held:  # nothing more comes: all that is held comes out
        taken = aligner.take(owned, lambda p: False, limit)
        if not taken:  # a wait began: once it is over, the call makes progress
            clock.now += 1
            taken = aligner.take(owned, lambda p: False, limit)
        assert taken, "a call past its waits must make progress"
        for p, recs in taken.items():
            out[p] += recs
    assert out == sent


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_record_waits_for_every_partition_to_reach_it(data):
    """Caught-up partitions holding records bound what goes: nothing later than the latest
    record any of them holds; an empty partition holds everything back for `idle`."""
    aligner, clock = _aligner()
    polls = _polls(data)
    owned = {p for poll in polls for p in poll}
    for poll in polls:
        aligner.add(poll)
        tops = {p: max(r.timestamp for r in q) for p, q in aligner.held.items()}
        empty = owned - set(tops)
        taken = aligner.take(owned, lambda p: False, 10_000)
        if empty:
            assert not taken, "an empty partition holds the others back for a while"
            clock.now += 0.03
            taken = aligner.take(owned, lambda p: False, 10_000)
        if tops:
            assert taken, "past the idle wait, the earliest partition gives what it holds"
            mark = min(tops.values())
            assert all(r.timestamp <= mark for recs in taken.values() for r in recs)
            earliest = min(tops, key=tops.get)
            assert earliest not in aligner.held  # (gave all it held)


def test_records_of_one_send_wait_for_a_partition_behind():
    """Partition 1 has records of the same send on the broker: those of partition 0 wait
    for them (for at most `patience`), then go together."""
    aligner, clock = _aligner()
    aligner.add({0: [Rec(0, 0, 100), Rec(0, 1, 100)], 1: [Rec(1, 0, 100)]})
    behind = {1}
    assert aligner.take({0, 1}, lambda p: p in behind, 100) == {}
    assert aligner.wait(0.2) == 0.02  # (the idle wait is the first to end)
    aligner.add({1: [Rec(1, 1, 100), Rec(1, 2, 101)]})
    behind.clear()
    taken = aligner.take({0, 1}, lambda p: p in behind, 100)
    assert [r.offset for r in taken[0]] == [0, 1]
    assert [r.offset for r in taken[1]] == [0, 1]  # (101 waits for partition 0 to reach it)

    aligner.add({0: [Rec(0, 2, 200)], 1: [Rec(1, 3, 150)]})
    assert [r.offset for r in aligner.take({0, 1}, lambda p: False, 100)[1]] == [2, 3]
    assert aligner.take({0, 1}, lambda p: True, 100) == {}  # 1 is behind, holding nothing
    clock.now += 0.3
    assert aligner.take({0, 1}, lambda p: True, 100) == {}
    clock.now += 0.3  # patience is over
    assert [r.offset for r in aligner.take({0, 1}, lambda p: True, 100)[0]] == [2]


def test_a_partition_read_again_from_its_committed_offset_is_not_held_twice():
    aligner, _ = _aligner()
    aligner.add({0: [Rec(0, 5, 1), Rec(0, 6, 2)], 1: [Rec(1, 0, 9)]})
    aligner.add({0: [Rec(0, 5, 1), Rec(0, 6, 2), Rec(0, 7, 3)]})  # moved back to 5
    assert [r.offset for r in aligner.held[0]] == [5, 6, 7]
    aligner.drop([1])
    assert set(aligner.held) == {0}
