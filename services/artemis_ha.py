"""ActiveMQ Artemis as a replicated primary/backup pair: two local brokers, each with its own folder, address and namespace.

For the cluster harness and the failover tests. Each broker is an ordinary local Artemis
(:class:`services.artemis.ArtemisService`: same instance layout, same AMQP acceptor, same
address defaults, so the story's ``temperature`` fan-out is created on the primary by
``demo.topology`` exactly as on a single broker, and replicated with everything else) plus
the replication HA policy of Artemis 2.40: ``<ha-policy><replication><primary>`` /
``<backup>``, a cluster connection over the same acceptor to the other broker (static
connectors, no broadcast), ``check-for-active-server`` on the primary so that a restarted
primary never becomes a second active broker, ``allow-failback`` on the backup.

The signals are Artemis's own log lines: ``AMQ221024`` (the backup is synchronized with the
primary) and ``AMQ221007`` in the backup's log (it is now active), checked together with an AMQP open
where a broker should serve. Clients get both brokers in the failover form of the
project's connection options (``amqp://primary:port,amqp://backup:port``).

Limits: a pair cannot tell a dead primary from a cut network; when the primary's host is
cut off, the backup activates while the isolated primary stays active too (Artemis calls
this split brain; a real deployment adds a lock manager such as ZooKeeper, or
``network_check`` addresses so the isolated broker stops itself). Give ``network_check``
an address only the primary's working network reaches (e.g. its gateway) when the harness
cuts hosts and later restores them: the cut-off primary then stops serving, and when the
network is back it restarts, finds the active backup and takes over from it (failback).
Restarting both after both stopped: start the one that was active last first; a primary
started alone after a failover serves its own, older journal.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from services.artemis import ArtemisService
from services.probes import amqp_ready
from services.process import wait_until
from services.settings import ServiceSettings, free_port

BACKUP_SYNCHRONIZED = "AMQ221024"  # "Backup server ... is synchronized with primary server"
# Artemis 2.40's replicating backup logs AMQ221037 ("... to become 'active'") and then this
# one; AMQ221010 ("Backup Server is now active") is not logged on this path.
BACKUP_ACTIVE = "AMQ221007"  # "Server is now active" (a primary logs it too)
_HA_BLOCK = re.compile(r"\s*<!-- services\.artemis_ha begin -->.*?<!-- services\.artemis_ha end -->", re.DOTALL)


@dataclass(frozen=True)
class ArtemisNodeSpec:
    """One broker of the pair: its address and AMQP port (also its replication port), its folder, where it runs.

    ``netns``: a Linux network namespace to run in (``ip netns exec``); ``launcher``: a whole
    command prefix instead (e.g. a host's network and mount namespaces), which wins over it.
    """

    host: str
    port: int
    folder: Path
    netns: str | None = None
    launcher: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"amqp://{self.host}:{self.port}"


def local_pair(root: Path, hosts: tuple[str, str] = ("127.0.0.1", "127.0.0.1")) -> tuple[ArtemisNodeSpec, ArtemisNodeSpec]:
    """Primary and backup specs on free ports, in ``root/artemis-primary`` and ``root/artemis-backup``."""
    return (
        ArtemisNodeSpec(hosts[0], free_port(hosts[0]), root / "artemis-primary"),
        ArtemisNodeSpec(hosts[1], free_port(hosts[1]), root / "artemis-backup"),
    )


class ReplicatedArtemis(ArtemisService):
    """One broker of a replicated pair: an :class:`ArtemisService` whose broker.xml also holds the HA policy."""

    def __init__(
        self,
        settings: ServiceSettings,
        artemis_home: Path,
        role: str,
        peer: ArtemisNodeSpec,
        cluster_password: str,
        network_check: tuple[str, ...] = (),
    ) -> None:
        if role not in ("primary", "backup"):
            raise ValueError(f"role must be 'primary' or 'backup', got {role!r}")
        super().__init__(settings, artemis_home)
        self.role = role
        self.peer = peer
        self.cluster_password = cluster_password
        self.network_check = network_check

    def _ha_block(self) -> str:
        s = self.settings
        policy = (
            "<primary><check-for-active-server>true</check-for-active-server></primary>"
            if self.role == "primary"
            else "<backup><allow-failback>true</allow-failback></backup>"
        )
        network = (
            f"<network-check-list>{','.join(self.network_check)}</network-check-list>"
            "<network-check-period>2000</network-check-period><network-check-timeout>1000</network-check-timeout>"
            if self.network_check
            else ""
        )
        # check-period/connection-ttl: a peer that stops answering (a cut network, not only a
        # closed socket) is declared gone after 5 s instead of the default 60 s.
        return f"""
      <!-- services.artemis_ha begin -->
      <connectors>
         <connector name="self">tcp://{s.host}:{s.amqp_port}</connector>
         <connector name="peer">tcp://{self.peer.host}:{self.peer.port}</connector>
      </connectors>
      <cluster-user>ha-cluster</cluster-user>
      <cluster-password>{self.cluster_password}</cluster-password>
      <cluster-connections>
         <cluster-connection name="ha-pair">
            <connector-ref>self</connector-ref>
            <check-period>1000</check-period>
            <connection-ttl>5000</connection-ttl>
            <retry-interval>500</retry-interval>
            <reconnect-attempts>-1</reconnect-attempts>
            <static-connectors><connector-ref>peer</connector-ref></static-connectors>
         </cluster-connection>
      </cluster-connections>
      <ha-policy><replication>{policy}</replication></ha-policy>
      {network}
      <!-- services.artemis_ha end -->"""

    def _configure(self) -> None:
        super()._configure()
        broker_xml = self.instance / "etc" / "broker.xml"
        text = _HA_BLOCK.sub("", broker_xml.read_text())
        text = text.replace("</core>", self._ha_block() + "\n   </core>", 1)
        broker_xml.write_text(text)

    def log_mark(self) -> int:
        """The current end of the broker's log: pass it as ``since`` to wait only for lines written after now."""
        try:
            return self.process.log_file.stat().st_size
        except FileNotFoundError:
            return 0

    def logged(self, code: str, since: int = 0) -> bool:
        """True if the broker's log holds ``code`` (an ``AMQ`` message id) after byte offset ``since``."""
        try:
            with open(self.process.log_file, "rb") as log:
                log.seek(since)
                return code.encode() in log.read()
        except FileNotFoundError:
            return False

    def wait_logged(self, code: str, what: str, since: int = 0, timeout: float = 120.0) -> None:
        """Wait until the log holds ``code`` after ``since``; fail if the broker exits or time is up."""
        wait_until(lambda: self.logged(code, since), f"{what} ({code}) on the Artemis {self.role}", timeout, [self.process])


class ArtemisHaPair:
    """A replicated Artemis primary and backup: start, wait for replication, kill the primary, wait for the backup.

    ``start()`` returns at once; ``wait_ready()`` returns when the primary serves AMQP and
    the backup has logged that it is synchronized (``AMQ221024``), so every message the
    primary accepts from then on is on both. ``kill_primary()`` is a crash (SIGKILL);
    ``wait_backup_active()`` returns once the backup logged ``AMQ221007`` after the kill
    and serves AMQP.

    ``settings`` gives what both share (credentials, cache); each broker's address, port,
    folder and launcher come from its spec. ``network_check``: addresses each broker pings
    every 2 s; when none answers it stops serving until one does (see the module notes).
    """

    def __init__(
        self,
        primary: ArtemisNodeSpec,
        backup: ArtemisNodeSpec,
        artemis_home: Path,
        *,
        settings: ServiceSettings | None = None,
        heap: str = "384m",
        cluster_password: str = "ha-cluster-secret",
        network_check: tuple[str, ...] = (),
    ) -> None:
        base = settings or ServiceSettings()
        self.specs = {"primary": primary, "backup": backup}

        def node(role: str, spec: ArtemisNodeSpec, peer: ArtemisNodeSpec) -> ReplicatedArtemis:
            own = replace(
                base,
                host=spec.host,
                amqp_port=spec.port,
                run_dir=spec.folder,
                netns=spec.netns,
                launch_prefix=spec.launcher,
                jvm_heap=heap,
            )
            return ReplicatedArtemis(own, artemis_home, role, peer, cluster_password, network_check)

        self.primary = node("primary", primary, backup)
        self.backup = node("backup", backup, primary)
        self._marks = {"primary": 0, "backup": 0}

    @property
    def url(self) -> str:
        """Both brokers, primary first, in the failover form every AMQP client of the project accepts."""
        return f"{self.primary.url},{self.backup.url}"

    @property
    def urls(self) -> tuple[str, str]:
        return (self.primary.url, self.backup.url)

    def start(self) -> ArtemisHaPair:
        """Create (first time) and launch both brokers; returns at once."""
        self.mark_failover()
        try:
            self.primary.start()
            self.backup.start()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Wait until the primary serves AMQP and the backup is synchronized with it (replicating)."""
        deadline = time.monotonic() + timeout
        self.primary.wait_ready(timeout)
        self.backup.wait_logged(
            BACKUP_SYNCHRONIZED, "replication sync with the primary", self._marks["backup"], max(1.0, deadline - time.monotonic())
        )

    def mark_failover(self) -> None:
        """Remember where both logs end now; the waits below look only at what is logged after.

        :meth:`kill_primary` and :meth:`start_primary` call it; call it yourself before
        cutting the primary's network, then :meth:`wait_backup_active`.
        """
        self._marks = {"primary": self.primary.log_mark(), "backup": self.backup.log_mark()}

    def kill_primary(self) -> None:
        """SIGKILL the primary, as a crash would; the backup takes over (see :meth:`wait_backup_active`)."""
        self.mark_failover()
        self.primary.kill()

    def wait_backup_active(self, timeout: float = 120.0) -> None:
        """Wait until the backup logged that it is active (since the mark) and serves AMQP."""
        deadline = time.monotonic() + timeout
        self.backup.wait_logged(BACKUP_ACTIVE, "activation of the backup", self._marks["backup"], timeout)
        _wait_amqp(self.backup, deadline)

    def start_primary(self) -> None:
        """Restart a killed or stopped primary on its folder; returns at once (then :meth:`wait_failed_back`).

        It finds the active backup (``check-for-active-server``), copies its journal, and
        the backup hands back (``allow-failback``): clients fail over to the primary again.
        """
        self.mark_failover()
        self.primary.start()

    def wait_failed_back(self, timeout: float = 180.0) -> None:
        """Wait until the primary is active again (logged since the mark, serving AMQP) and the backup replicates it."""
        deadline = time.monotonic() + timeout
        self.primary.wait_logged(BACKUP_ACTIVE, "the primary active again", self._marks["primary"], timeout)
        _wait_amqp(self.primary, deadline)
        self.backup.wait_logged(
            BACKUP_SYNCHRONIZED, "the backup replicating again", self._marks["backup"], max(1.0, deadline - time.monotonic())
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop both (backup first, so that stopping the primary does not make it activate); folders stay."""
        self.backup.stop(timeout)
        self.primary.stop(timeout)

    def __enter__(self) -> ArtemisHaPair:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _wait_amqp(broker: ReplicatedArtemis, deadline: float) -> None:
    s = broker.settings
    broker.process.wait_ready(
        lambda: amqp_ready(s.host, s.amqp_port), max(1.0, deadline - time.monotonic()), f"AMQP open on {s.amqp_url}"
    )
