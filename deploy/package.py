"""Build the archive a Spark cluster needs to run this project's jobs: ``dist/amqp_spark_kafka.zip``.

    python -m deploy.package                      # -> dist/amqp_spark_kafka.zip
    PYTHONPATH=dist/amqp_spark_kafka.zip \\
    spark-submit --master spark://host:7077 --py-files dist/amqp_spark_kafka.zip \\
        --jars <spark-sql-kafka jars> jobs/windowed_max.py ...

The archive holds the Python packages the jobs import where Spark runs them: ``connectors``
and ``jobs`` (the AMQP data source's ``read()`` and ``write()`` run in executor Python
workers, and unpickling them imports these modules). Nothing else: the executors need the
third-party modules (``pyspark``, ``pyarrow``, ``proton``) installed in their own Python, the
same versions and Python minor version as the driver's (``requirements.txt``), because
``python-qpid-proton`` has a C extension that a zip cannot carry.

Pitfall: give the driver the archive on ``PYTHONPATH`` too (``PYTHONPATH=dist/... spark-submit``).
Spark 4.2 plans a Python streaming data source in a Python process that the driver JVM starts
without the ``--py-files``; see docs/deployment.md.

The build is reproducible: files sorted, fixed timestamps, no ``__pycache__``; two builds of
the same tree are byte-identical, so a deployment can compare checksums.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connectors", "jobs")
DEFAULT_OUT = REPO_ROOT / "dist" / "amqp_spark_kafka.zip"
# 1980-01-01, the earliest time a zip entry can carry: builds do not depend on file mtimes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def source_files(root: Path = REPO_ROOT, packages: Iterable[str] = PACKAGES) -> list[Path]:
    """The ``.py`` files of ``packages`` under ``root``, relative to ``root``, sorted."""
    files: list[Path] = []
    for name in packages:
        pkg = root / name
        if not (pkg / "__init__.py").is_file():
            raise FileNotFoundError(f"{pkg} is not a Python package (no __init__.py)")
        files += [p.relative_to(root) for p in pkg.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files, key=lambda p: p.as_posix())


def top_level_imports(root: Path, files: Iterable[Path]) -> set[str]:
    """Top-level module names the files import (absolute imports only)."""
    names: set[str] = set()
    for rel in files:
        tree = ast.parse((root / rel).read_text(encoding="utf-8"), filename=str(rel))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def missing_local_imports(root: Path = REPO_ROOT, packages: Sequence[str] = PACKAGES) -> set[str]:
    """Packages of this repository that the archived code imports but the archive would not hold.

    A non-empty answer means ``PACKAGES`` must grow (or the import must go): on a cluster the
    executors would fail with ``ModuleNotFoundError``.
    """
    local = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()} | {p.stem for p in root.glob("*.py")}
    return (top_level_imports(root, source_files(root, packages)) & local) - set(packages)


def build(out: Path = DEFAULT_OUT, root: Path = REPO_ROOT, packages: Sequence[str] = PACKAGES) -> Path:
    """Write the archive to ``out`` (parents created) and return it; fails if an import would dangle."""
    missing = missing_local_imports(root, packages)
    if missing:
        raise SystemExit(f"the archived packages import {sorted(missing)} from this repository; add them to PACKAGES")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in source_files(root, packages):
            info = zipfile.ZipInfo(rel.as_posix(), date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (root / rel).read_bytes())
    tmp.replace(out)  # never leave a half-written archive where spark-submit would pick it up
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.package", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"archive path (default: {DEFAULT_OUT.relative_to(REPO_ROOT)})"
    )
    args = parser.parse_args(argv)
    out = build(args.out)
    with zipfile.ZipFile(out) as zf:
        count = len(zf.namelist())
    print(f"{out} ({count} files, sha256 {sha256(out)[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
