"""`trailpay dev` keeps going when a service dies (issue 14): the accrual is SIGKILLed,
the supervisor starts it again, and an event sent meanwhile (held only by the embedded
broker's memory, which used to be stopped with everything else) is applied."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.devserver import wait_ready
from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import balances, cloud_event, deal, eventually, setup_programme, uid
from trailpay.adapters.embedded import free_port

pytestmark = pytest.mark.integration


def _service_pid(parent: int, name: str) -> int | None:
    """The pid of `trailpay <name>` among the supervisor's children."""
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[-2:] == [name.encode(), b""]:
            return int(pid)
    return None


async def test_a_killed_accrual_comes_back_and_applies_what_came_meanwhile(database_url,
                                                                          tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(DATABASE_URL=database_url, GATEWAY_PORT=str(port), TRAILPAY_ADMIN_TOKEN=ADMIN_TOKEN,
               LOG_LEVEL="WARNING")
    dev = subprocess.Popen([sys.executable, "-m", "services.cli", "dev"], env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_ready, f"{url}/readyz", 90)
        async with httpx.AsyncClient(base_url=url, timeout=30.0, headers={
                "Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
            _, (p,) = await setup_programme(client, 1)
            first = cloud_event("deal.closed", deal(uid("C"), [(p, "1")], acv="10000.00"))
            r = await client.post("/v1/events", json=first)
            assert r.status_code == 202, r.text
            await eventually(lambda: _earned(client, p, "2000.00"), timeout=60)

            accrual = _service_pid(dev.pid, "accrual")
            assert accrual is not None
            os.kill(accrual, signal.SIGKILL)
            second = cloud_event("deal.closed", deal(uid("C"), [(p, "1")], acv="5000.00"))
            r = await client.post("/v1/events", json=second)
            assert r.status_code == 202, r.text

            await eventually(lambda: _earned(client, p, "3000.00"), timeout=90)
            assert dev.poll() is None, "the supervisor stopped"
            again = _service_pid(dev.pid, "accrual")
            assert again is not None and again != accrual
    finally:
        dev.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(dev.wait, 60)
    assert code == 0


async def _earned(client, partner_id: str, amount: str) -> bool:
    b = await balances(client, partner_id)
    return b.get("payable") == amount  # the deals start in February: past their hold
