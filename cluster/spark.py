"""A Spark standalone cluster across hosts: the master on one, one worker on each of the others.

The daemons are the pyspark wheel's own (``spark-class ...Master`` / ``...Worker``), as in
:mod:`deploy.standalone`, but each bound to its host's address and started through the
host's launcher, so a worker sees only its own folder (its ``work`` dir, where executors
unpack what the application ships) and none of the driver's. Workers are small (1 core,
1 GiB for executors, 256 MiB daemons): the machine is shared.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from cluster.hosts import Host
from deploy.standalone import spark_home, spark_script
from services.process import BackgroundProcess

MASTER_PORT = 7077
MASTER_UI_PORT = 8081
WORKER_UI_PORT = 8082


def _daemon_env(host: Host) -> dict[str, str]:
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": host.address,
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_LOG_DIR": str(host.folder / "spark-logs"),
        # Executors find the connector and the jobs only in what the application ships.
        "PYTHONPATH": "",
    }


class SparkCluster:
    """The master on ``master_host``, a worker on each of ``worker_hosts``."""

    def __init__(self, master_host: Host, worker_hosts: list[Host]) -> None:
        self.master_host = master_host
        self.worker_hosts = {h.name: h for h in worker_hosts}
        self.master = BackgroundProcess("spark-master", master_host.folder)
        self.workers = {h.name: BackgroundProcess("spark-worker", h.folder) for h in worker_hosts}

    @property
    def master_url(self) -> str:
        return f"spark://{self.master_host.address}:{MASTER_PORT}"

    def start(self, timeout: float = 180.0) -> SparkCluster:
        """Start the master and every worker; return once the master lists them all ALIVE."""
        host = self.master_host
        self.master.start(
            [*host.launcher(), spark_script("spark-class"), "org.apache.spark.deploy.master.Master",
             "--host", host.address, "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI_PORT)],
            env=_daemon_env(host), cwd=host.folder,
        )  # fmt: skip
        self.master.wait_ready(lambda: self.state() is not None, timeout, f"the master's web UI on {host.address}")
        for name in self.workers:
            self.start_worker(name)
        self.wait_workers(len(self.workers), timeout)
        return self

    def start_worker(self, name: str) -> None:
        host = self.worker_hosts[name]
        work = host.folder / "work"
        work.mkdir(parents=True, exist_ok=True)
        self.workers[name].start(
            [*host.launcher(), spark_script("spark-class"), "org.apache.spark.deploy.worker.Worker",
             "--host", host.address, "--cores", "1", "--memory", "1g", "--webui-port", str(WORKER_UI_PORT),
             "--work-dir", str(work), self.master_url],
            env=_daemon_env(host), cwd=host.folder,
        )  # fmt: skip

    def wait_workers(self, count: int, timeout: float) -> None:
        self.master.wait_ready(lambda: self.alive_workers() >= count, timeout, f"{count} ALIVE workers on the master")

    def state(self) -> dict[str, Any] | None:
        """The master's ``/json/`` document, or None while it does not answer."""
        try:
            url = f"http://{self.master_host.address}:{MASTER_UI_PORT}/json/"
            with urllib.request.urlopen(url, timeout=3) as resp:
                return json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def alive_workers(self) -> int:
        state = self.state() or {}
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def executors_of_running_apps(self) -> int:
        """Cores the running applications hold (one per executor here)."""
        return sum(int(a.get("cores", 0)) for a in (self.state() or {}).get("activeapps", []))

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop(timeout=20)
        self.master.stop(timeout=20)
