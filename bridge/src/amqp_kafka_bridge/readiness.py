"""Waiting for a bridge to serve: poll its ``/readyz`` until it answers 200 (for scripts, benchmarks and tests)."""

from __future__ import annotations

import subprocess
import time
import urllib.request


class BridgeNotReady(RuntimeError):
    """The bridge did not answer ``/readyz`` with 200 in time, or its process exited first."""


def wait_until_ready(
    http_url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None, interval: float = 0.05
) -> None:
    """Poll ``<http_url>/readyz`` (e.g. ``http://127.0.0.1:8080``) until it answers 200.

    Raises :class:`BridgeNotReady` after ``timeout`` seconds, or as soon as ``process`` (the
    bridge's, if given) has exited.
    """
    url = http_url.rstrip("/") + "/readyz"
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise BridgeNotReady(f"the bridge exited with code {process.returncode} before {url} answered 200")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # refused while starting, or 503 (an HTTPError) while not ready
            pass
        if time.monotonic() > deadline:
            raise BridgeNotReady(f"{url} did not answer 200 within {timeout:.0f}s")
        time.sleep(interval)  # the probe's retry interval: the signal is the HTTP answer itself
