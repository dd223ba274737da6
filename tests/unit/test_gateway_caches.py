"""The gateway's in-process caches: API keys (TTL), rendered bodies (version-checked, LRU by
bytes) and the shared partner-version query."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from pathlib import Path

from services.gateway.read_cache import RenderCache, VersionBatcher, etag_matches
from trailpay.adapters.api_keys import ApiKey, KeyCache

KEY = ApiKey("k1", "name", ("statements:read",), None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_trusted_for_the_ttl_then_looked_up_again() -> None:
    clock, calls = Clock(), []
    answer: dict[str, ApiKey | None] = {"t": KEY}

    async def load(token: str) -> ApiKey | None:
        calls.append(token)
        return answer[token]

    cache = KeyCache(ttl=2.0, clock=clock)
    assert await cache.get("t", load) == KEY
    answer["t"] = None  # revoked in the database
    clock.now += 1.9
    assert await cache.get("t", load) == KEY and calls == ["t"]
    clock.now += 0.2  # past the TTL: asks again, and the revocation shows
    assert await cache.get("t", load) is None
    assert await cache.get("t", load) is None and calls == ["t", "t", "t"]  # never caches a miss


async def test_ttl_zero_asks_every_time() -> None:
    calls = []

    async def load(token: str) -> ApiKey | None:
        calls.append(token)
        return KEY

    cache = KeyCache(ttl=0)
    for _ in range(3):
        assert await cache.get("t", load) == KEY
    assert len(calls) == 3


async def test_the_key_cache_stays_bounded() -> None:
    async def load(token: str) -> ApiKey | None:
        return KEY

    cache = KeyCache(ttl=60, size=10)
    for n in range(25):
        await cache.get(f"t{n}", load)
    assert len(cache._keys) <= 10


def _stored_bytes(body: bytes) -> int:
    cache = RenderCache(max_bytes=1 << 20)
    cache.put("k", 1, body)
    return cache.bytes


def test_a_body_is_served_only_at_its_version() -> None:
    cache = RenderCache(max_bytes=1000)
    put = cache.put("k", (1, "x", 5), b"body")
    assert cache.get("k", (1, "x", 5)) == put
    assert cache.get("k", (2, "y", 6)) is None  # the partner changed: never the old body
    assert cache.get("other", (1, "x", 5)) is None


def test_bodies_are_dropped_least_recently_used_first_within_the_byte_budget() -> None:
    rng = random.Random(7)
    bodies = {k: rng.randbytes(25) for k in "abcde"}  # random bytes do not compress
    stored = max(_stored_bytes(b) for b in bodies.values())
    budget = 4 * stored + stored // 2  # room for four bodies, not five
    cache = RenderCache(max_bytes=budget)
    for k in "abcd":
        cache.put(k, 1, bodies[k])
    assert cache.get("a", 1) is not None  # a is now the most recently used
    cache.put("e", 1, bodies["e"])
    assert cache.bytes <= budget and cache.get("b", 1) is None
    assert all(cache.get(k, 1) is not None for k in "acde")
    cache.put("huge", 1, rng.randbytes(2 * stored))  # over a quarter of the budget: not kept
    assert cache.get("huge", 1) is None and cache.bytes <= budget


def test_bodies_are_stored_compressed_and_served_exactly() -> None:
    body = b'{"lines": [' + b", ".join(
        b'{"bucket": "pending", "amount": "%d.00", "explanation": "Usage api_calls: 3%% of '
        b'revenue, your share 60%%"}' % n for n in range(300)) + b"]}"
    cache = RenderCache(max_bytes=1 << 20)
    put = cache.put("k", 1, body)
    assert put.body == body
    assert cache.bytes < len(body) // 5  # the budget counts the stored (compressed) bytes
    hit = cache.get("k", 1)
    assert hit is not None and hit.body == body and hit.etag == put.etag


# Run in a fresh interpreter, so the heap holds nothing else: fill a cache, report how
# much the process grew and how many bytes the cache counts.
_FILL = """
import orjson
from services.gateway.read_cache import RenderCache
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
body = orjson.dumps({"lines": [{"n": i, "explanation": f"Renewal, tenure year 2: {i}"}
                               for i in range(800)]})
cache = RenderCache(max_bytes=1 << 30)
before = rss()
for n in range(3000):
    cache.put(n, 1, body + str(n).encode())
print(rss() - before, cache.bytes)
"""


def test_the_heap_holds_about_what_the_cache_counts() -> None:
    """The compressor writes into a worst-case-sized buffer and shrinks it in place; kept
    as is, each body pinned its allocator block (9,000 of them: gateway RSS 154 -> 396 MiB).
    The cache keeps a copy of the packed size instead."""
    out = subprocess.run([sys.executable, "-c", _FILL], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2])
    grown, counted = map(int, out.stdout.split())
    assert counted > 1_000_000
    assert grown < 2 * counted + (4 << 20), (grown, counted)


def test_etags_compare_weakly_and_in_lists() -> None:
    tag = '"abc"'
    assert etag_matches('"abc"', tag) and etag_matches('W/"abc"', tag)
    assert etag_matches('"zzz", "abc"', tag) and etag_matches("*", tag)
    assert not etag_matches(None, tag) and not etag_matches('"abd"', tag)


async def test_concurrent_version_reads_share_queries_sent_after_they_asked() -> None:
    queries: list[list[str]] = []
    release = asyncio.Event()
    state = {"v": 1}

    async def fetch(ids: list[str]) -> dict[str, int]:
        queries.append(sorted(ids))
        seen = state["v"]  # what the database says when the query runs
        await release.wait()
        return {i: seen for i in ids if i != "ghost"}

    b = VersionBatcher(fetch)
    first = [asyncio.create_task(b.get(p)) for p in ("P1", "P2", "P1", "ghost")]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert queries == [["P1", "P2", "ghost"]]  # one query for four reads
    state["v"] = 2  # a commit while the first query is in flight ...
    late = asyncio.create_task(b.get("P1"))  # ... then a read asks
    release.set()
    assert await asyncio.gather(*first) == [1, 1, 1, None]
    assert await late == 2  # answered by a later query, never by the one in flight
    assert queries == [["P1", "P2", "ghost"], ["P1"]]


async def test_a_failed_version_query_fails_its_readers_only() -> None:
    calls = {"n": 0}

    async def fetch(ids: list[str]) -> dict[str, int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("db down")
        return dict.fromkeys(ids, 7)

    b = VersionBatcher(fetch)
    try:
        await b.get("P1")
        raise AssertionError("expected the query's error")
    except ConnectionError:
        pass
    assert await b.get("P1") == 7
