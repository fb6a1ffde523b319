"""Command lines of ``simulators.temperature`` for tests, built from keyword arguments."""

from __future__ import annotations

import sys


def temperature_args(**options: object) -> list[str]:
    """``simulators.temperature`` arguments: each keyword as ``--its-name value``, in order.

    ``late_fraction=0.05`` -> ``--late-fraction 0.05``; ``True`` gives the bare flag
    (``quiet=True`` -> ``--quiet``); ``None`` and ``False`` leave the option out.
    """
    argv: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        argv.append("--" + name.replace("_", "-"))
        if value is not True:
            argv.append(str(value))
    return argv


def temperature_command(**options: object) -> list[str]:
    """The same, as a whole command that runs the simulator in its own process."""
    return [sys.executable, "-m", "simulators.temperature", *temperature_args(**options)]
