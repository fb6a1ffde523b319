"""``python -m bench [--soak-seconds 300]``: run every benchmark in turn, then the soak (``make bench``).

``make bench BENCH_ARGS="--soak-seconds 120"`` shortens the soak (env: ``SOAK_SECONDS``); 0 skips it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from importlib.metadata import version

import bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument(
        "--soak-seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 300)), help="seconds of soak load (default 300; 0 skips it)"
    )
    args = parser.parse_args(argv)
    runs: list[tuple[str, list[str]]] = [
        (m.name, []) for m in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name) if m.name.startswith("bench_")
    ]
    if args.soak_seconds > 0:
        runs.append(("soak", ["--seconds", f"{args.soak_seconds:g}"]))
    failed = []
    for module, module_args in runs:
        print(f"\n== {module} ==", flush=True)
        try:
            code = importlib.import_module(f"bench.{module}").main(module_args)
        except Exception as err:  # noqa: BLE001 - one failing benchmark must not hide the others
            print(f"{module} failed: {err!r}", flush=True)
            failed.append(module)
            continue
        if code:
            print(f"{module} exited with {code}", flush=True)
            failed.append(module)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
