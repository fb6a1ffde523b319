"""Child processes of the demo: each in its own process group, output to a log, bounded stops.

A child's own process group means a Ctrl-C at the terminal reaches only the demo, which
then stops the children in order (publisher first, results last), and that stopping a
child also stops what it spawned (spark-submit's JVM and its Python driver).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO


class Child:
    """One started command. Every output line goes to ``log_file`` and, if given, to ``on_line``.

    ``on_line`` runs on a reader thread; it gets the line without its newline.
    """

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        on_line: Callable[[str], None] | None = None,
        stdout_only: bool = False,
    ) -> None:
        self.name = name
        self.log_file = log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[str] = open(log_file, "w", encoding="utf-8", buffering=1)
        self._log.write("$ " + " ".join(cmd) + "\n")
        self.proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=self._log if stdout_only else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._on_line = on_line
        self._reader = threading.Thread(target=self._pump, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            if self._on_line is not None:
                self._on_line(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if still running after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0, only: str | None = None) -> int:
        """Signal the child's process group (or, with ``only``, just its descendant whose command line
        contains ``only``), wait ``timeout``; then SIGKILL the group. Returns the exit status.

        ``only`` is for spark-submit: a signal to the Python driver alone ends the queries
        cleanly, while one to the whole group also interrupts the JVM and the source's workers.
        """
        if self.running():
            target = find_descendant(self.proc.pid, only) if only else None
            if target is not None:
                _signal(target, sig)
            else:
                self._signal_group(sig)
            if self.wait(timeout) is None:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(10)
        else:
            self._signal_group(signal.SIGKILL)  # whatever it spawned and left behind
        self._reader.join(5)
        self._log.close()
        return self.proc.returncode

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def find_descendant(pid: int, needle: str) -> int | None:
    """The first Python process below ``pid`` with ``needle`` in its arguments (Linux ``/proc``; None elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    todo = list(children.get(pid, []))
    while todo:
        kid = todo.pop(0)
        try:
            argv = Path(f"/proc/{kid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if Path(argv[0]).name.startswith("python") and any(needle in arg for arg in argv):
            return kid
        todo.extend(children.get(kid, []))
    return None
