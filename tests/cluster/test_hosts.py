"""The hosts themselves: private folders, reachability, a cut, a blackholed peer, a power-off, cleanup.

A small network of its own (prefix ``clt-``, 10.78.0.0/24), so it runs beside a cluster run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.hosts import Network, remove_leftovers, unavailable
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

PREFIX, SUBNET = "clt-", "10.78.0"


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    reason = unavailable()
    if reason:
        pytest.skip(f"hosts: {reason}")
    net = Network(tmp_path, PREFIX, SUBNET).up(["a", "b"])
    try:
        yield net
    finally:
        net.destroy()


def run_on(net: Network, host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*net[host].launcher(), *cmd], capture_output=True, text=True, timeout=60)


def connects(net: Network, host: str, address: str, port: int) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=2).close()"
    return run_on(net, host, sys.executable, "-c", probe).returncode == 0


def reachable_from_here(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_a_host_sees_its_own_folder_only(network: Network) -> None:
    (network["a"].folder / "log.wal").write_text("a's log")
    assert run_on(network, "a", "ls", str(network["a"].folder)).stdout.split() == ["log.wal"]
    seen = run_on(network, "b", "ls", "-A", str(network["a"].folder))
    assert seen.returncode == 0 and seen.stdout == "", f"b sees a's folder: {seen.stdout!r}"
    assert (network["a"].folder / "log.wal").read_text() == "a's log"  # hidden, not harmed
    (network.storage / "checkpoint").write_text("shared")
    assert run_on(network, "b", "cat", str(network.storage / "checkpoint")).stdout == "shared"


def test_cut_block_and_power_off(network: Network) -> None:
    a, b = network["a"], network["b"]
    server = subprocess.Popen([*a.launcher(), sys.executable, "-m", "http.server", "--bind", a.address, "8000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: reachable_from_here(a.address, 8000), 30, "a's server from the observer")
        assert connects(network, "b", a.address, 8000)
        b.block([a.address])
        assert not connects(network, "b", a.address, 8000)
        assert reachable_from_here(a.address, 8000), "blocking b's route to a cut a off from everyone"
        b.unblock([a.address])
        assert connects(network, "b", a.address, 8000)
        a.cut()
        assert not reachable_from_here(a.address, 8000)
        a.restore()
        wait_for(lambda: reachable_from_here(a.address, 8000), 30, "a back after the restore")
        assert server.pid in a.pids()
        a.kill()
        assert server.wait(10) == -9 and a.pids() == []
    finally:
        server.kill()
        server.wait(10)


def test_leftovers_of_a_crashed_run_are_removed(tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(f"hosts: {reason}")
    net = Network(tmp_path, PREFIX, SUBNET).up(["a"])
    sleeper = subprocess.Popen([*net["a"].launcher(), "sleep", "600"])
    removed = remove_leftovers(PREFIX)  # as `make cluster-clean` after a run that never reached its cleanup
    assert f"{PREFIX}a" in removed and f"{PREFIX}br0" in removed
    assert sleeper.wait(15) == -9
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{PREFIX}a" not in listing
