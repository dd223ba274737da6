"""The gateway's read cache: rendered statements and balances, never served stale.

Every read asks PostgreSQL for the partner's *version* (one indexed lookup, see
`read_models.PARTNER_VERSIONS`): the accrual service changes a partner's postings,
balances, payouts and disputes only in a transaction that also rewrites that partner's
`partner_state` row with a larger `entries`. A cached body is served only
when it was rendered at exactly the version the database reports now; otherwise it
is rebuilt from one SQL statement that also reads the version it is stored under
(one snapshot, one round trip; with nothing cached under the key, that statement is the
only query). Both queries are made *after* the request arrived, so an answer is never
older than the last commit before the request.

Concurrent requests share version queries: the ones waiting while a query is in
flight go together in the next one (`VersionBatcher`), one round trip for many.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import zstandard

Version = Any  # an opaque, comparable value; None = no such partner


@dataclass(frozen=True, slots=True)
class Rendered:
    version: Version
    body: bytes
    etag: str


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of If-None-Match against our (strong) tag."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


class RenderCache:
    """Least-recently-used bodies by key, within a byte budget of stored bytes.

    Bodies are stored zstd-compressed (level 3) and expanded on each hit. Statement JSON
    repeats its keys and sentences line after line and shrinks about fifteenfold, so the
    budget holds that many times more pages: at the default 64 MiB, the benchmark's 9,000
    statements fit, where uncompressed the cache kept evicting and 82% of statement reads
    were rebuilt from PostgreSQL. zstd over zlib (level 1, which this used first): on the
    benchmark's statements (46 KB on average), 15.5x against 12.3x smaller, 47 against
    97 us to compress and 14 against 63 us to expand, and a hit pays the expansion.
    The ETag is of the body as served."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Hashable, tuple[Version, bytes, str]] = OrderedDict()
        self.hits = self.misses = 0
        # One of each per cache: neither is thread-safe, and the gateway's loop is one thread.
        self._pack = zstandard.ZstdCompressor(level=3).compress
        self._unpack = zstandard.ZstdDecompressor().decompress

    def get(self, key: Hashable, version: Version) -> Rendered | None:
        item = self._items.get(key)
        if item is not None and item[0] == version:
            self._items.move_to_end(key)
            self.hits += 1
            return Rendered(version, self._unpack(item[1]), item[2])
        self.misses += 1
        return None

    def put(self, key: Hashable, version: Version, body: bytes) -> Rendered:
        item = Rendered(version, body, etag_of(body))
        if self.max_bytes <= 0:
            return item
        # Copied to a bytes object of its own size: zstd writes into one of the worst-case
        # size and shrinks it in place, and 9,000 such long-lived blocks left the gateway's
        # heap at 396 MiB after the benchmark's read load (154 MiB with the copy).
        packed = bytes(memoryview(self._pack(body)))
        if len(packed) > self.max_bytes // 4:
            return item  # too big to be worth the room it would take
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= len(old[1])
        self._items[key] = (version, packed, item.etag)
        self.bytes += len(packed)
        while self.bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= len(dropped[1])
        return item

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items


class VersionBatcher:
    """Partner versions for many concurrent requests in few queries.

    `get(partner_id)` joins the next query; at most one query is in flight, and the
    requests that arrive meanwhile wait for the one after it, so every answer comes
    from a query sent after the request asked.
    """

    def __init__(self, fetch: Callable[[list[str]], Awaitable[dict[str, Version]]],
                 max_batch: int = 500) -> None:
        self._fetch = fetch
        self._max = max_batch
        self._waiting: dict[str, list[asyncio.Future]] = {}
        self._runner: asyncio.Task | None = None

    async def get(self, partner_id: str) -> Version:
        fut = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(partner_id, []).append(fut)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await fut

    async def _run(self) -> None:
        while self._waiting:
            batch: dict[str, list[asyncio.Future]] = {}
            for pid in list(self._waiting)[:self._max]:
                batch[pid] = self._waiting.pop(pid)
            try:
                found = await self._fetch(list(batch))
            except asyncio.CancelledError:
                for futs in batch.values():
                    for f in futs:
                        f.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                _settle(batch.values(), exc=exc)
                continue
            for pid, futs in batch.items():
                _settle((futs,), result=found.get(pid))


def _settle(groups: Iterable[list[asyncio.Future]], result: Any = None,
            exc: BaseException | None = None) -> None:
    for futs in groups:
        for f in futs:
            if not f.done():
                if exc is not None:
                    f.set_exception(exc)
                else:
                    f.set_result(result)
