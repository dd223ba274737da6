"""outbox.Handoff: what the publisher may send from memory (the table decides what comes
next and in what order; the handoff only spares reading payloads back)."""

from __future__ import annotations

from trailpay.adapters.outbox import Committed, Handoff


def batch(ids: list[int], topic: str = "t") -> Committed:
    return Committed(ids, topic, [(b"k", str(i).encode()) for i in ids])


def test_the_oldest_held_come_first_across_batches():
    h = Handoff()
    h.put(batch([11, 12, 13]))
    h.put(batch([20, 14]))  # ids need not be contiguous, nor increasing across writers
    assert h.first(4) == [11, 12, 13, 20]
    assert h.take(12) == (b"k", b"12") and h.take(12) is None  # taken once
    assert h.first(100) == [11, 13, 20, 14] and len(h) == 4


def test_a_row_not_held_is_none():
    h = Handoff()
    h.put(batch([1]))
    assert h.take(2) is None and len(h) == 1


def test_past_its_limit_the_handoff_forgets_everything():
    h = Handoff(limit=4)
    h.put(batch([1, 2, 3]))
    h.put(batch([4, 5, 6]))  # 6 > 4: what was held is forgotten, the new batch kept
    assert h.take(1) is None
    assert h.first(100) == [4, 5, 6]
