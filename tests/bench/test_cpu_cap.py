"""``bench.common.cpu_capped``: the CPU cgroup the worker-scaling benchmark holds each worker in."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.common import cpu_capped, cpu_cgroup, cpu_seconds


@pytest.mark.skipif(cpu_cgroup() is None, reason="no cgroup cpu controller on this machine")
def test_a_capped_busy_process_gets_its_share_and_is_let_go_after():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with cpu_capped([busy.pid], 0.2):
            start, cpu0 = time.monotonic(), cpu_seconds(busy.pid)
            time.sleep(1.5)  # the measurement window itself, not a synchronisation
            capped = (cpu_seconds(busy.pid) - cpu0) / (time.monotonic() - start)
        start, cpu0 = time.monotonic(), cpu_seconds(busy.pid)
        time.sleep(1.0)
        free = (cpu_seconds(busy.pid) - cpu0) / (time.monotonic() - start)
    finally:
        busy.kill()
        busy.wait()
    assert capped < 0.3, f"held to 0.2 of a core, it used {capped:.2f}"
    assert free > capped + 0.2, f"after the block it should run free: {free:.2f} vs {capped:.2f} capped"
    leftovers = [p.name for p in cpu_cgroup()[0].glob("bench-*")]
    assert not leftovers, f"cgroups left behind: {leftovers}"
