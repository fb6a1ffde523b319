"""Machine-readable benchmark results: every figure, and every ratio with its same-run baseline beside it.

A benchmark records figures (``figure("bridge_in", 4100, "msg/s")``) and ratios between two
recorded figures (``ratio("bridge_in_vs_raw", "bridge_in", "raw_receive", target=1.0)``); the
ratio keeps both values, so a reader of the JSON never has to trust a number measured in
another run. ``write`` adds what the figures depend on: cores, load average at the start and
the end (the machine is shared), the commit, the parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


@dataclass
class Results:
    """The figures and ratios of one benchmark run."""

    benchmark: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratios: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    load_at_start: tuple[float, ...] = field(default_factory=os.getloadavg)

    def figure(self, name: str, value: float, unit: str, note: str | None = None) -> float:
        """Record one measured figure; returns ``value`` so a call can sit inside an expression."""
        self.figures[name] = {"value": value, "unit": unit, **({"note": note} if note else {})}
        return value

    def value(self, name: str) -> float:
        return float(self.figures[name]["value"])

    def ratio(self, name: str, of: str, baseline: str, target: float | None = None, higher_is_better: bool = True) -> float:
        """Record ``of / baseline`` (both recorded figures), with both values and the target it is held against."""
        value = self.value(of) / self.value(baseline) if self.value(baseline) else float("nan")
        entry: dict[str, Any] = {
            "value": value,
            "of": of,
            "of_value": self.value(of),
            "baseline": baseline,
            "baseline_value": self.value(baseline),
            "unit": self.figures[of]["unit"],
        }
        if target is not None:
            entry["target"] = target
            entry["met"] = value >= target if higher_is_better else value <= target
        self.ratios[name] = entry
        return value

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "machine": {
                "cores": os.cpu_count(),
                "load_at_start": list(self.load_at_start),
                "load_at_end": list(os.getloadavg()),
                "python": platform.python_version(),
            },
            "commit": _commit(),
            "params": self.params,
            "figures": self.figures,
            "ratios": self.ratios,
        }

    def write(self, path: str | Path | None) -> None:
        """Write the JSON to ``path`` (nothing when None); parent folders are created."""
        if path is None:
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=False) + "\n")
        print(f"results written to {path}", flush=True)


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", help="also write every figure and ratio (with its baseline) to FILE as JSON")
