"""A bounded, self-stopping read-load generator for the gateway, on 127.0.0.1 only.

N clients, each one keep-alive HTTP/1.1 connection, closed loop (a client sends its
next request when the previous answer is in). Every run stops at its deadline or
after `max_requests`, whichever comes first. A tiny hand-rolled client keeps the
generator's own CPU cost low: on a 2-core box it shares the CPUs with the server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Samples:
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.readexactly(length)
    if close:
        raise ConnectionResetError("server asked to close")
    return status, body


async def run_load(host: str, port: int, token: str,
                   pick: Callable[[random.Random], tuple[str, str]], clients: int = 50,
                   seconds: float = 30.0, max_requests: int = 500_000, seed: int = 7) -> Samples:
    """pick(rng) -> (endpoint name, path). Returns latencies per endpoint name."""
    if host not in LOOPBACK:
        raise ValueError("the load generator only targets this machine (127.0.0.1)")
    samples = Samples()
    budget = {"left": max_requests}
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        reader = writer = None
        try:
            while time.monotonic() < deadline and budget["left"] > 0:
                budget["left"] -= 1
                name, path = pick(rng)
                request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                           f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
                           ).encode()
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                started = time.perf_counter()
                try:
                    status, _ = await asyncio.wait_for(_request(reader, writer, request), 30)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    samples.errors[name] = samples.errors.get(name, 0) + 1
                    writer.close()
                    reader = writer = None
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                by_status = samples.statuses.setdefault(name, {})
                by_status[status] = by_status.get(status, 0) + 1
                if status == 200:
                    samples.latencies_ms.setdefault(name, []).append(elapsed)
                else:
                    samples.errors[name] = samples.errors.get(name, 0) + 1
        finally:
            if writer is not None:
                writer.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return samples


def summary(samples: Samples, seconds: float) -> dict[str, dict[str, float | int | None]]:
    out = {}
    for name in sorted(set(samples.latencies_ms) | set(samples.errors)):
        lat = samples.latencies_ms.get(name, [])
        out[name] = {"requests": len(lat), "errors": samples.errors.get(name, 0),
                     "per_s": len(lat) / seconds if seconds else 0,
                     "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
                     "p99_ms": percentile(lat, 99), "max_ms": max(lat) if lat else None,
                     "statuses": {str(k): v for k, v in
                                  sorted(samples.statuses.get(name, {}).items())}}
    return out
