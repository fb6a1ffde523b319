"""Hosts on one machine: a Linux network namespace per host, all joined by one Linux bridge.

    network = Network(root)            # bridge "clu-br0", 10.77.0.0/24; this process is 10.77.0.1
    kafka1 = network.add("kafka1")     # namespace "clu-kafka1" at 10.77.0.10, folder root/hosts/kafka1
    kafka1.launcher()                  # the command prefix that runs a process "on" kafka1
    kafka1.cut(); kafka1.restore()     # the host's cable pulled and plugged back in
    kafka1.block([other.address])      # the host loses its routes to some peers only
    network.destroy()                  # every process on every host killed, namespaces and bridge removed

Each host gets its own address and its own private folder. A process started through
:meth:`Host.launcher` runs in the host's network namespace and in a mount namespace of its
own where every *other* host's folder is covered by an empty tmpfs, so nothing on one host
can read another host's log, checkpoint or data by accident, as on separate machines. The
folder ``root/storage`` is left visible to all: it stands for durable shared storage
(HDFS, S3) and is used only for what a real deployment would put there.

Faults are silent, like real ones: :meth:`Host.cut` takes the host's end of its veth down,
so open TCP connections stall (nothing is reset) and new ones find no route;
:meth:`Host.block` adds blackhole routes to some peers, so the host loses them while still
reaching the rest. :meth:`Host.kill` SIGKILLs every process in the namespace, as a host
that loses power would.

Every name starts with ``clu-``: :func:`remove_leftovers` removes what a crashed earlier run
left behind (processes in such namespaces, the namespaces, the bridge and its veths).
Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for the mounts) and iproute2.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "clu-"
SUBNET = "10.77.0"
OBSERVER = 1  # this process, on the bridge itself (10.77.0.1): it starts, watches and checks everything
FIRST_HOST = 10


class HostError(RuntimeError):
    """A namespace, link or route could not be set up; the message has iproute2's own words."""


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise HostError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
    return done


def unavailable() -> str | None:
    """None if hosts can be made here, else why not (no iproute2, unshare or root)."""
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (iproute2, util-linux)"
    if os.geteuid() != 0:
        return "network and mount namespaces need root"
    return None


def _netns_pids(netns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=20)
    return [int(p) for p in done.stdout.split()]


def _kill_netns_processes(netns: str, deadline_s: float = 15.0) -> None:
    """SIGKILL every process in ``netns`` and wait (bounded) until none is left."""
    deadline = time.monotonic() + deadline_s
    while pids := _netns_pids(netns):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise HostError(f"processes {pids} in {netns} survive SIGKILL")
        time.sleep(0.1)


def remove_leftovers(prefix: str = PREFIX) -> list[str]:
    """Remove every ``prefix`` namespace (after killing what runs in it), link and bridge; returns what was removed."""
    removed = []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(prefix):
            _kill_netns_processes(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    links = _ip("-o", "link", "show", check=False).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(prefix):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass
class Host:
    """One host: namespace ``netns`` at ``address``, state in ``folder``, hiding ``hidden`` folders."""

    name: str
    address: str
    index: int
    folder: Path
    hidden: list[Path] = field(default_factory=list)
    prefix: str = PREFIX

    @property
    def netns(self) -> str:
        return f"{self.prefix}{self.name}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br0"

    @property
    def _veth(self) -> str:
        return f"{self.prefix}v{self.index}"  # the bridge's end; the host's end is "eth0" inside

    def create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _ip("netns", "add", self.netns)
        _ip("link", "add", self._veth, "type", "veth", "peer", "name", f"{self._veth}p")
        _ip("link", "set", f"{self._veth}p", "netns", self.netns)
        _ip("link", "set", self._veth, "master", self.bridge)
        _ip("link", "set", self._veth, "up")
        _ip("link", "set", f"{self._veth}p", "name", "eth0", netns=self.netns)
        _ip("addr", "add", f"{self.address}/24", "dev", "eth0", netns=self.netns)
        _ip("link", "set", "eth0", "up", netns=self.netns)
        _ip("link", "set", "lo", "up", netns=self.netns)

    def launcher(self) -> list[str]:
        """The command prefix that runs a process on this host: its network, its folders only.

        ``unshare`` and ``sh`` exec what follows, so a pid taken from the started process is
        the program's own (a pid file, a SIGKILL reach the service, not a wrapper).
        """
        mounts = "".join(f"mount -t tmpfs -o size=1m,mode=0755 tmpfs '{p}' && " for p in self.hidden)
        return [
            "ip", "netns", "exec", self.netns,
            "unshare", "--mount", "--propagation", "private",
            "sh", "-c", f'{mounts}exec "$@"', "sh",
        ]  # fmt: skip

    def pids(self) -> list[int]:
        return _netns_pids(self.netns)

    def cut(self) -> None:
        """Pull the cable: the host's link goes down under whatever is connected."""
        _ip("link", "set", "eth0", "down", netns=self.netns)

    def restore(self) -> None:
        """Plug it back in; TCP retransmits what it can."""
        _ip("link", "set", "eth0", "up", netns=self.netns)

    def block(self, addresses: list[str]) -> None:
        """Lose the routes to ``addresses`` only (blackhole: packets to them are dropped here)."""
        for address in addresses:
            _ip("route", "add", "blackhole", f"{address}/32", netns=self.netns)

    def unblock(self, addresses: list[str]) -> None:
        for address in addresses:
            _ip("route", "del", "blackhole", f"{address}/32", netns=self.netns, check=False)

    def kill(self) -> None:
        """Power off: SIGKILL every process running on the host."""
        _kill_netns_processes(self.netns)

    def destroy(self) -> None:
        _kill_netns_processes(self.netns)
        _ip("netns", "del", self.netns, check=False)
        _ip("link", "del", self._veth, check=False)


class Network:
    """The bridge ``<prefix>br0`` and the hosts on it in ``<subnet>.0/24``, with their folders under ``root/hosts``.

    ``prefix`` and ``subnet`` let two networks coexist (the harness's and a quick test's).
    """

    def __init__(self, root: Path, prefix: str = PREFIX, subnet: str = SUBNET) -> None:
        self.root = Path(root)
        self.prefix, self.subnet = prefix, subnet
        self.bridge = f"{prefix}br0"
        self.hosts: dict[str, Host] = {}
        self.storage = self.root / "storage"

    @property
    def observer_address(self) -> str:
        """This process's address on the bridge."""
        return f"{self.subnet}.{OBSERVER}"

    def up(self, names: list[str]) -> Network:
        """Create the bridge and one host per name, in order (addresses from .10); leftovers first removed."""
        remove_leftovers(self.prefix)
        self.storage.mkdir(parents=True, exist_ok=True)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.observer_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        folders = {name: self.root / "hosts" / name for name in names}
        for index, name in enumerate(names):
            others = [folder for other, folder in folders.items() if other != name]
            host = Host(name, f"{self.subnet}.{FIRST_HOST + index}", index, folders[name], others, self.prefix)
            self.hosts[name] = host
            host.create()
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def destroy(self) -> None:
        """Kill everything on every host, remove the namespaces and the bridge (safe to call twice)."""
        for host in self.hosts.values():
            host.destroy()
        _ip("link", "del", self.bridge, check=False)
        remove_leftovers(self.prefix)
