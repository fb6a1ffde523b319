"""A Spark standalone cluster (one master, one worker) on this machine, from the installed pyspark.

    python -m deploy.standalone start        # prints the master URL, e.g. spark://127.0.0.1:7077
    python -m deploy.standalone status
    python -m deploy.standalone stop

    with StandaloneCluster.on_free_ports(run_dir) as cluster:   # tests
        subprocess.run([spark_submit(), "--master", cluster.master_url, ...])

The master and the worker are ``spark-class org.apache.spark.deploy.master.Master`` and
``...worker.Worker`` from the pyspark wheel (``SPARK_HOME`` = the pyspark package folder),
each a :class:`services.process.BackgroundProcess` with a pid file and a log in ``run_dir``.
Ready means: the master's web UI answers ``/json/`` and lists the worker ``ALIVE`` with its
cores, which is what an application needs to get an executor.

The worker is small on purpose (1 core, 1g by default, daemon JVMs at 256m): the machine is
shared. Its environment has no ``PYTHONPATH``, so executors import this project only from
what the application ships (the connector in ``--archives env.tar.gz#environment``, see
:mod:`deploy.executor_env`; the jobs in ``--py-files``), as on a real cluster.

Environment: ``SPARK_MASTER_PORT`` (7077), ``SPARK_MASTER_WEBUI_PORT`` (8081),
``SPARK_WORKER_WEBUI_PORT`` (8082), ``SPARK_WORKER_CORES`` (1), ``SPARK_WORKER_MEMORY`` (1g),
``SPARK_STANDALONE_DIR`` (``.run/spark-standalone``). The UI ports are not Spark's 8080/8081
defaults because the bridge's HTTP port is 8080.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from services.process import BackgroundProcess, ServiceError, port_in_use

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def spark_home() -> Path:
    """The pyspark package folder: it holds ``jars/`` and is what ``find-spark-home`` picks."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def spark_script(name: str) -> str:
    """``spark-submit``/``spark-class`` beside this interpreter (the venv's ``bin``), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"{name} not found beside {sys.executable} nor on PATH (is pyspark installed?)")


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass
class StandaloneCluster:
    """One master and one worker on ``HOST``; ``start()`` returns once the worker is registered."""

    run_dir: Path
    master_port: int = 7077
    master_ui_port: int = 8081
    worker_ui_port: int = 8082
    worker_cores: int = 1
    worker_memory: str = "1g"
    daemon_memory: str = "256m"
    start_timeout: float = 90.0
    hidden_from_worker: tuple[Path, ...] = ()
    """Folders the worker and its executors cannot see, as on a host without shared storage:
    each is covered by an empty tmpfs in the worker's own mount namespace (Linux, root)."""
    master: BackgroundProcess = field(init=False)
    worker: BackgroundProcess = field(init=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.master = BackgroundProcess("spark-master", self.run_dir)
        self.worker = BackgroundProcess("spark-worker", self.run_dir)

    @classmethod
    def from_env(cls) -> StandaloneCluster:
        return cls(
            run_dir=Path(os.environ.get("SPARK_STANDALONE_DIR", str(REPO_ROOT / ".run" / "spark-standalone"))),
            master_port=_env_int("SPARK_MASTER_PORT", cls.master_port),
            master_ui_port=_env_int("SPARK_MASTER_WEBUI_PORT", cls.master_ui_port),
            worker_ui_port=_env_int("SPARK_WORKER_WEBUI_PORT", cls.worker_ui_port),
            worker_cores=_env_int("SPARK_WORKER_CORES", cls.worker_cores),
            worker_memory=os.environ.get("SPARK_WORKER_MEMORY", cls.worker_memory),
        )

    @classmethod
    def on_free_ports(cls, run_dir: Path, **kwargs: Any) -> StandaloneCluster:
        return cls(run_dir=run_dir, master_port=free_port(), master_ui_port=free_port(), worker_ui_port=free_port(), **kwargs)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def master_ui(self) -> str:
        return f"http://{HOST}:{self.master_ui_port}"

    def _env(self) -> dict[str, str]:
        return {
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": HOST,
            "SPARK_DAEMON_MEMORY": self.daemon_memory,
            # Executors must find this project only in what the application ships (--archives, --py-files).
            "PYTHONPATH": "",
            "SPARK_LOG_DIR": str(self.run_dir),
        }

    def start(self) -> StandaloneCluster:
        """Start the master, then the worker; wait until the master lists the worker ALIVE."""
        for port in (self.master_port, self.master_ui_port, self.worker_ui_port):
            if port_in_use(HOST, port):
                raise ServiceError(
                    f"port {HOST}:{port} is taken; is a cluster already running? (python -m deploy.standalone status)"
                )
        spark_class = spark_script("spark-class")
        env = self._env()
        self.master.start(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(self.master_port),
             "--webui-port", str(self.master_ui_port)],
            env=env, cwd=self.run_dir,
        )  # fmt: skip
        self.master.wait_ready(lambda: self.state() is not None, self.start_timeout, f"web UI {self.master_ui}/json/")
        work_dir = self.run_dir / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
        self.worker.start(
            [*self._worker_launcher(), spark_class, "org.apache.spark.deploy.worker.Worker", "--host", HOST, "--cores", str(self.worker_cores),
             "--memory", self.worker_memory, "--webui-port", str(self.worker_ui_port), "--work-dir", str(work_dir),
             self.master_url],
            env=env, cwd=self.run_dir,
        )  # fmt: skip
        self.worker.wait_ready(lambda: self.alive_workers() > 0, self.start_timeout, f"an ALIVE worker at {self.master_ui}/json/")
        return self

    def _worker_launcher(self) -> list[str]:
        if not self.hidden_from_worker:
            return []
        mounts = " && ".join(f"mount -t tmpfs -o size=1m,mode=0755 tmpfs '{p}'" for p in self.hidden_from_worker)
        # unshare and sh exec what follows, so the pid file still names the worker.
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"', "sh"]

    def state(self) -> dict[str, Any] | None:
        """The master's ``/json/`` document (workers, applications), or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.master_ui}/json/", timeout=3) as resp:
                return json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def alive_workers(self) -> int:
        state = self.state() or {}
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE" and w.get("cores", 0) > 0)

    def applications(self) -> list[dict[str, Any]]:
        """Running applications as the master lists them (``id``, ``name``, ``state``, ``cores``...)."""
        return list((self.state() or {}).get("activeapps", []))

    def stop(self) -> None:
        """Worker first (it kills its executors), then the master; SIGKILL after a grace period."""
        self.worker.stop(timeout=20)
        self.master.stop(timeout=20)

    def __enter__(self) -> StandaloneCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.standalone", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument("command", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    cluster = StandaloneCluster.from_env()
    try:
        if args.command == "start":
            cluster.start()
            print(f"{cluster.master_url}  (UI {cluster.master_ui}, logs in {cluster.run_dir})")
        elif args.command == "stop":
            cluster.stop()
            print("spark master and worker stopped")
        else:
            workers = cluster.alive_workers()
            print(f"master {cluster.master_url}: {'up' if cluster.state() is not None else 'down'}, {workers} worker(s) alive")
            return 0 if workers else 3
    except (ServiceError, FileNotFoundError) as err:
        print(f"standalone: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
