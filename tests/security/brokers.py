"""A private Artemis for security tests, for settings the session's broker does not have (TLS, other credentials)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from services import ServiceSettings
from services.artemis import ArtemisService
from services.fetch import fetch_artemis


@contextlib.contextmanager
def private_broker(run_dir: Path, **settings: Any) -> Iterator[ArtemisService]:
    """An Artemis on free ports in ``run_dir``, with ``settings`` (``ServiceSettings`` fields) changed; stopped at exit."""
    base = replace(ServiceSettings.from_env().with_free_ports(run_dir), **settings)
    broker = ArtemisService(base, fetch_artemis(base))
    broker.start()
    try:
        broker.wait_ready(90)
        yield broker
    finally:
        broker.stop()
