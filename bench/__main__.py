"""``python -m bench [--json FILE] [--soak-seconds 300]``: run every benchmark in turn, then the soak (``make bench``).

``make bench`` writes every figure and ratio, each with the baseline measured in the same run,
to ``.run/bench.json``. ``make bench BENCH_ARGS="--soak-seconds 120"`` shortens the soak (env:
``SOAK_SECONDS``); 0 skips it. ``--only bench_bridge,pipeline`` runs a subset.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import bench
from bench.results import add_json_argument

# Benchmarks that take ``--json FILE``; the soak reports its own verdict on stdout.
WRITES_JSON_PREFIXES = ("bench_", "pipeline")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=float(os.environ.get("SOAK_SECONDS", 300)),
        help="seconds of soak load (default 300; 0 skips it)",
    )
    parser.add_argument("--only", default="", help="comma-separated benchmark modules to run (default: all)")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__))
    runs: list[tuple[str, list[str]]] = [(n, []) for n in names if n.startswith("bench_")]
    if "pipeline" in names:
        runs.append(("pipeline", []))
    if args.soak_seconds > 0:
        runs.append(("soak", ["--seconds", f"{args.soak_seconds:g}"]))
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        runs = [r for r in runs if r[0] in wanted]
    failed = []
    collected: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-json-") as tmp:
        for module, module_args in runs:
            print(f"\n== {module} ==", flush=True)
            part = Path(tmp) / f"{module}.json"
            if args.json and module.startswith(WRITES_JSON_PREFIXES):
                module_args = [*module_args, "--json", str(part)]
            try:
                code = importlib.import_module(f"bench.{module}").main(module_args)
            except Exception as err:  # noqa: BLE001 - one failing benchmark must not hide the others
                print(f"{module} failed: {err!r}", flush=True)
                failed.append(module)
                code = None
            if code:
                print(f"{module} exited with {code}", flush=True)
                failed.append(module)
            if part.exists():
                collected[module] = json.loads(part.read_text())
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = {"written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "failed": failed, "benchmarks": collected}
        out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nall results written to {out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
