"""Run a service's loops until asked to stop, or until any loop dies (then stop all)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def until_stopped(stop: asyncio.Event, loops: list[Coroutine[Any, Any, Any]],
                        on_stop: Callable[[], None] = lambda: None) -> None:
    tasks = [asyncio.create_task(c) for c in loops]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    on_stop()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    failed = [r for t, r in zip(tasks, results, strict=True) if t in done and isinstance(r, BaseException)]
    if failed:
        raise failed[0]
