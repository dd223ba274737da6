"""python -m tests.soak [--duration S] [--kills N]: the soak (make soak); exit 1 when
anything was lost, doubled or answered 5xx, or a check failed."""

from __future__ import annotations

import argparse
import asyncio
import sys

from tests.soak.runner import report, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--kills", type=int, default=110, help="SIGKILLs of ledger and accrual")
    parser.add_argument("--rate", type=float, default=60.0, help="events/s offered")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    r = asyncio.run(run(args.duration, args.kills, args.rate, args.seed))
    print(report(r), flush=True)
    bad = r["lost"] or r["doubled"] or r["short"] or r["server_errors_5xx"] or any(
        v != "passed" for v in r["checks"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
