"""`python -m bench` (what `make bench` runs): the benchmark in bench.run.

Run as a package's `__main__`, the harness is not re-imported by the rebuild's spawned
worker processes (multiprocessing skips a main module named `*.__main__`), so the
workers start as they do under `trailpay rebuild`: importing bench.run took 0.9 s.
"""

import sys

from bench.run import main

sys.exit(main())
