"""``python -m cluster clean``: remove what a crashed cluster run left (processes on its hosts, namespaces, bridge)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cluster.hosts import remove_leftovers, unavailable


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["clean"])
    parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"cluster: nothing to clean ({reason})")
        return 0
    removed = remove_leftovers()
    print(f"cluster: removed {', '.join(removed)}" if removed else "cluster: nothing left over")
    return 0


if __name__ == "__main__":
    sys.exit(main())
