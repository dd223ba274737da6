"""outbox.Handoff: what the publisher may send from memory, and when it must read the table."""

from __future__ import annotations

from trailpay.adapters.outbox import Committed, Handoff


def batch(first: int, n: int, topic: str = "t") -> Committed:
    return Committed(first, topic, [(b"k", str(first + i).encode()) for i in range(n)])


def values(taken) -> list[int]:
    return [int(v) for _, v in taken[0]]


def test_rows_right_after_the_cursor_are_taken_in_order_across_batches():
    h = Handoff()
    h.put(batch(11, 3))
    h.put(batch(14, 2))
    taken = h.take(10, "t", 100)
    assert values(taken) == [11, 12, 13, 14, 15] and taken[1] == 15
    assert h.take(15, "t", 100) is None  # all sent: nothing held


def test_a_limit_splits_a_batch_and_the_rest_follows():
    h = Handoff()
    h.put(batch(1, 5))
    first = h.take(0, "t", 2)
    assert values(first) == [1, 2] and first[1] == 2
    rest = h.take(2, "t", 100)
    assert values(rest) == [3, 4, 5] and rest[1] == 5


def test_a_gap_after_the_cursor_means_the_table():
    h = Handoff()
    h.put(batch(12, 3))
    assert h.take(10, "t", 100) is None  # id 11 was written by someone else


def test_rows_the_table_path_already_sent_are_dropped_not_resent():
    h = Handoff()
    h.put(batch(11, 3))
    h.put(batch(14, 3))
    taken = h.take(15, "t", 100)  # the cursor moved past 11-15 by reading the table
    assert values(taken) == [16] and taken[1] == 16


def test_rows_of_another_topic_move_the_cursor_without_being_sent():
    h = Handoff()
    h.put(batch(1, 2, topic="other"))
    h.put(batch(3, 1))
    taken = h.take(0, "t", 100)
    assert values(taken) == [3] and taken[1] == 3


def test_past_its_limit_the_handoff_forgets_everything():
    h = Handoff(limit=4)
    h.put(batch(1, 3))
    h.put(batch(4, 3))  # 6 > 4: the first batch is forgotten, so id 1 is not held
    assert h.take(0, "t", 100) is None
    taken = h.take(3, "t", 100)
    assert values(taken) == [4, 5, 6]
