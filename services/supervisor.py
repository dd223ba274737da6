"""Keep `trailpay dev`'s service processes running: a service that dies is started again,
after a pause that doubles with each quick death, and nothing else is stopped for it.

The broker of the embedded default keeps its events in memory only: stopping it
because the accrual crashed (as the supervisor once did) dropped every event not yet
consumed. The services are idempotent on restart (progress and effect commit together),
so starting one again is always safe; what a supervisor must not do is give up.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

BACKOFF_MIN = 0.5   # seconds before the first restart...
BACKOFF_MAX = 30.0  # ...doubling up to this while the service keeps dying quickly
STEADY = 30.0       # a service that ran this long before dying starts again at once-ish


@dataclass
class Service:
    """One supervised process: its name, command line and environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_MIN
    due: float | None = None  # when a dead service is to be started again

    def start(self, clock: Callable[[], float]) -> None:
        self.proc = subprocess.Popen(list(self.argv), env=dict(self.env))
        self.started, self.due = clock(), None


@dataclass
class Supervisor:
    """Start services, restart the ones that exit (`poll` once in a while), stop them all."""

    services: list[Service] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    def start(self, service: Service) -> Service:
        service.start(self.clock)
        self.services.append(service)
        return service

    def poll(self) -> None:
        """Notice exits and schedule restarts; start the services whose pause is over."""
        now = self.clock()
        for s in self.services:
            if s.proc is not None and s.due is None and s.proc.poll() is not None:
                if now - s.started >= STEADY:
                    s.backoff = BACKOFF_MIN
                s.due = now + s.backoff
                self.say(f"{s.name} exited with {s.proc.returncode}; restarting in "
                         f"{s.backoff:.1f}s (the broker and the other services keep running)")
                s.backoff = min(s.backoff * 2, BACKOFF_MAX)
            if s.due is not None and now >= s.due:
                s.restarts += 1
                s.start(self.clock)
                self.say(f"{s.name} restarted (pid {s.proc.pid}, restart {s.restarts})")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every service (each drains its batch in hand), SIGKILL after `grace`."""
        for s in self.services:
            s.due = None
            if s.proc is not None and s.proc.poll() is None:
                s.proc.terminate()
        for s in self.services:
            if s.proc is None:
                continue
            try:
                s.proc.wait(grace)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
