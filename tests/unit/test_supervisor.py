"""The dev supervisor's restart policy, on real short-lived processes and a fake clock."""

from __future__ import annotations

import sys

from services.supervisor import BACKOFF_MIN, STEADY, Service, Supervisor


def _dies(code: int) -> Service:
    return Service("svc", [sys.executable, "-c", f"raise SystemExit({code})"], {})


def test_a_dead_service_is_restarted_with_a_doubling_pause_then_a_fresh_one():
    now = [0.0]
    said: list[str] = []
    sup = Supervisor(clock=lambda: now[0], say=said.append)
    s = sup.start(_dies(3))
    s.proc.wait()
    sup.poll()
    assert s.due == BACKOFF_MIN and "exited with 3" in said[-1]
    sup.poll()
    assert s.restarts == 0  # not before its pause
    now[0] = BACKOFF_MIN
    sup.poll()
    assert s.restarts == 1 and "restarted" in said[-1]
    s.proc.wait()
    sup.poll()
    assert s.due == now[0] + 2 * BACKOFF_MIN  # died quickly again: twice the pause
    now[0] += 2 * BACKOFF_MIN
    sup.poll()
    s.proc.wait()
    now[0] += STEADY  # it ran long enough: the pause starts over
    sup.poll()
    assert s.due == now[0] + BACKOFF_MIN
    sup.stop()
    assert s.restarts == 2


def test_stop_ends_a_running_service_and_cancels_a_pending_restart():
    sup = Supervisor(say=lambda _: None)
    running = sup.start(Service("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                                {}))
    dead = sup.start(_dies(1))
    dead.proc.wait()
    sup.poll()
    assert dead.due is not None
    sup.stop(grace=5)
    assert running.proc.returncode is not None and dead.due is None
