"""``python -m bench``: run every benchmark in turn (``make bench``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> int:
    failed = []
    for module in sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")):
        print(f"\n== {module} ==", flush=True)
        try:
            importlib.import_module(f"bench.{module}").main([])
        except Exception as err:  # noqa: BLE001 - one failing benchmark must not hide the others
            print(f"{module} failed: {err!r}", flush=True)
            failed.append(module)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
