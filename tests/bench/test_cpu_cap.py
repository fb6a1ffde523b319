"""``bench.common.cpu_capped``: the CPU cgroup the worker-scaling benchmark holds each worker in."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.common import cpu_capped, cpu_seconds

CPU_CGROUP = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() or "cpu" in (
    Path("/sys/fs/cgroup/cgroup.controllers").read_text() if Path("/sys/fs/cgroup/cgroup.controllers").exists() else ""
)


@pytest.mark.skipif(not CPU_CGROUP, reason="no cgroup cpu controller on this machine")
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
    leftovers = [p.name for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")) if root.exists()
                 for p in root.glob("bench-*")]  # fmt: skip
    assert not leftovers, f"cgroups left behind: {leftovers}"
