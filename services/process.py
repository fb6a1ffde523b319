"""A background JVM process with a pid file, a log file and a bounded stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says why and what to do."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_stays_busy(host: str, port: int, grace: float = 5.0) -> bool:
    """True if the port is still in use after ``grace`` seconds.

    A client reconnecting in a loop to a local port that has no listener can briefly
    connect to itself (TCP simultaneous open), which looks like a listener; it goes away.
    """
    deadline = time.monotonic() + grace
    while port_in_use(host, port):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)
    return False


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    from shutil import which

    java = which("java")
    if java is None:
        raise ServiceError("no Java found: install a JDK 17+ (e.g. `apt-get install openjdk-17-jdk-headless`) or set JAVA_HOME")
    return java


class BackgroundProcess:
    """One service process in its own session, tracked by ``<run>/<name>.pid``.

    The pid file lets ``make down`` in another shell stop what ``make up`` started.
    """

    def __init__(self, name: str, run_dir: Path) -> None:
        self.name = name
        self.run_dir = run_dir
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = run_dir / f"{name}.log"

    @property
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # its own process group: stop() reaches the JVM behind any wrapper script
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        self._popen = proc  # keeps the child reaped when this process started it
        return proc.pid

    def signal(self, sig: int) -> None:
        pid = self.pid
        if pid is not None:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; removes the pid file."""
        pid = self.pid
        if pid is not None:
            self.signal(signal.SIGTERM)
            if not _wait_dead(pid, timeout):
                self.signal(signal.SIGKILL)
                _wait_dead(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would; the pid file goes too."""
        pid = self.pid
        if pid is not None:
            self.signal(signal.SIGKILL)
            _wait_dead(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)

    def wait_ready(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``probe`` (a real protocol check) until it is true, the process dies, or time is up."""
        wait_until(probe, f"{self.name} ready ({what})", timeout, watched=[self])


def wait_until(check: Callable[[], T], what: str, timeout: float, watched: Iterable[BackgroundProcess] = ()) -> T:
    """Poll ``check`` until it answers something true and return that answer.

    Fails at once, with the end of its log, when a process of ``watched`` exits (waiting on
    would only hide why), and at the deadline with the logs to read.
    """
    watched = list(watched)
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        for process in watched:
            if process.pid is None:
                raise ServiceError(
                    f"{process.name} exited while waiting for {what}; its log ({process.log_file}) ends:\n"
                    + log_tail(process.log_file)
                )
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            if len(watched) == 1:
                logs = f"its log ({watched[0].log_file}) ends:\n{log_tail(watched[0].log_file)}"
            else:
                logs = "logs: " + ", ".join(str(process.log_file) for process in watched)
            raise ServiceError(f"no {what} within {timeout:.0f}s; {logs}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _alive(pid: int) -> bool:
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False  # our own child, now reaped
    except ChildProcessError:
        pass  # not our child: fall through to the signal probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); look at its state where /proc exists.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
