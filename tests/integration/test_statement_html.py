"""The statement page in a real headless Chromium: it renders, its totals equal the JSON's,
the explanation sentences are there, and text people typed is shown, never run.

The gateway wants a bearer token, which a browser on the command line cannot send, so
the page the gateway served is saved and Chromium loads that file (it needs nothing
else: styles are inline). Chromium is the Debian package `chromium`; under CI=true a
missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.integration.helpers import cloud_event, deal, eventually, post_events, setup_programme, uid

pytestmark = pytest.mark.integration

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--hide-scrollbars"]
SHOTS = Path(tempfile.gettempdir()) / "trailpay-statement-shots"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed: `apt-get install chromium` (Debian package)"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing component is a failure)")
        pytest.skip(message)
    return found


def run_chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="trailpay-chromium-") as profile:
        return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, timeout=90, check=True)


class Cells(HTMLParser):
    """Collects the text of elements carrying data-role, and the explanation cells."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[dict[str, str], str]] = []
        self.why: list[str] = []
        self.tags: list[str] = []
        self._open: list[tuple[str, dict[str, str], list[str]]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "data-role" in a or a.get("class") == "why":
            self._open.append((tag, a, []))
        elif self._open:
            self._open[-1][2].append(f"<{tag}>")

    def handle_data(self, data):
        for _, _, text in self._open:
            text.append(data)

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            _, a, text = self._open.pop()
            content = "".join(text).strip()
            if "data-role" in a:
                self.cells.append((a, content))
            else:
                self.why.append(content)


def number(text: str) -> Decimal:
    """'-10,000.00 USD' -> Decimal('-10000.00')."""
    return Decimal(text.split()[0].replace(",", ""))


async def test_statement_page_renders_in_chromium_with_the_json_totals(client):
    binary = chromium()
    _, (p1, p2) = await setup_programme(client)
    await post_events(client, [
        # 20% of ACV 100,000.00 = 20,000.00, capped at 12,000.00, share 60%: 7,200.00,
        # pending until 2026-04-09
        cloud_event("deal.closed", deal(uid("C"), [(p1, "0.6"), (p2, "0.4")]),
                    time_="2026-03-10T09:00:00Z"),
        # ops take 35.50 back; the reason is typed by a person and must be shown, not run
        cloud_event("adjustment.posted", {
            "partner_id": p1, "currency": "USD", "amount": "-35.50",
            "reason": "<script>alert(1)</script> duplicate <b>MDF</b> claim",
            "approved_by": "ops"}, time_="2026-03-20T09:00:00Z"),
    ])

    async def statement():
        st = (await client.get(f"/v1/partners/{p1}/statements/2026-03")).json()
        return st if len(st["lines"]) >= 2 else None
    doc = await eventually(statement)
    r = await client.get(f"/v1/partners/{p1}/statements/2026-03", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")

    SHOTS.mkdir(exist_ok=True)
    page = SHOTS / f"statement-{p1}-2026-03.html"
    page.write_text(r.text, encoding="utf-8")
    dom = (await asyncio.to_thread(run_chromium, binary, "--dump-dom", page.as_uri())).stdout
    shot = SHOTS / f"statement-{p1}-2026-03.png"
    await asyncio.to_thread(run_chromium, binary, f"--screenshot={shot}",
                            "--window-size=1400,1100", page.as_uri())

    parsed = Cells()
    parsed.feed(dom.decode())
    assert "script" not in parsed.tags[parsed.tags.index("body"):]  # typed text never runs
    assert "table" in parsed.tags and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
    cells: dict[tuple[str, str, str], Decimal] = {}
    line_totals: dict[tuple[str, str], Decimal] = {}
    for a, text in parsed.cells:
        if a["data-role"] == "line":
            key = (a["data-currency"], a["data-bucket"])
            line_totals[key] = line_totals.get(key, Decimal(0)) + number(text)
        elif a["data-role"] in ("opening", "change", "closing"):
            cells[(a["data-role"], a["data-currency"], a["data-bucket"])] = number(text)

    opening = {b["currency"]: b for b in doc["opening"]}
    for b in doc["closing"]:
        cur = b["currency"]
        for bucket in ("held", "pending", "payable", "in_payout", "paid", "forfeited",
                       "clawed_back"):
            o = Decimal(opening.get(cur, {}).get(bucket, "0"))
            c = Decimal(b[bucket])
            assert cells[("closing", cur, bucket)] == c, (cur, bucket)
            assert cells[("opening", cur, bucket)] == o, (cur, bucket)
            assert cells[("change", cur, bucket)] == c - o == line_totals.get((cur, bucket), 0)
    assert cells[("closing", "USD", "pending")] == Decimal("7200.00")
    assert cells[("closing", "USD", "payable")] == Decimal("-35.50")
    # Every explanation sentence is on the page, as text.
    sentences = [ln["explanation"] for ln in doc["lines"]]
    assert len(parsed.why) == len(sentences)
    for sentence, cell in zip(sentences, parsed.why, strict=True):
        assert cell.startswith(sentence)
    assert any("<script>alert(1)</script>" in w for w in parsed.why)  # shown literally
    assert [ln["amount"] for ln in doc["lines"]] == ["7200.00", "-35.50"]
