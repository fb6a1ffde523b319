"""A second "host" on this machine: a Linux network namespace joined to this one by a veth pair.

A broker started inside it (``ServiceSettings.netns``) is reached at :attr:`HostLink.address`
over a real link that a test can cut: :meth:`HostLink.cut` takes the namespace's end down,
so packets in flight are lost, open TCP connections stall (nothing is reset, nothing is
closed: the peers only notice by their own timeouts) and new connections fail with "no
route to host"; :meth:`HostLink.restore` brings it back, and TCP retransmits what it can.
Needs root (CAP_NET_ADMIN) and iproute2; :func:`available` says whether both are there.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def available() -> str | None:
    """None if network namespaces can be made here, else the reason they cannot."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"cannot create a network namespace (needs root / CAP_NET_ADMIN): {exc.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


class HostLink:
    """The namespace ``name`` at ``address``, reached from here through the veth ``outside``."""

    def __init__(self, name: str, subnet: int) -> None:
        self.name = name
        self.outside = f"o-{name}"[:15]
        self.inside = f"i-{name}"[:15]
        self.local_address = f"10.231.{subnet}.1"
        self.address = f"10.231.{subnet}.2"

    def create(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        _ip("link", "set", self.inside, "netns", self.name)
        _ip("addr", "add", f"{self.local_address}/30", "dev", self.outside)
        _ip("link", "set", self.outside, "up")
        _ip("netns", "exec", self.name, "ip", "addr", "add", f"{self.address}/30", "dev", self.inside)
        _ip("netns", "exec", self.name, "ip", "link", "set", self.inside, "up")
        _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")

    def cut(self) -> None:
        """Take the link down under whatever is connected: a silent network partition."""
        _ip("netns", "exec", self.name, "ip", "link", "set", self.inside, "down")

    def restore(self) -> None:
        _ip("netns", "exec", self.name, "ip", "link", "set", self.inside, "up")

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.outside], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)


@contextmanager
def host_link(subnet: int = 77) -> Iterator[HostLink]:
    """A fresh namespace for the duration of the block, removed afterwards even on failure."""
    link = HostLink(f"ask-{uuid.uuid4().hex[:6]}", subnet)
    try:
        link.create()
        yield link
    finally:
        link.delete()
