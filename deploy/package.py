"""Build what a Spark cluster or a bridge host installs: the project's wheels and the jobs archive.

    python -m deploy.package --out-dir dist
    # -> dist/amqp_message_model-*.whl, dist/pyspark_amqp-*.whl, dist/amqp_kafka_bridge-*.whl, dist/jobs.zip

The wheels are the distributions users install (``pip install --find-links dist pyspark-amqp``,
``... amqp-kafka-bridge``); the executors of a cluster get them in a packed virtual environment
(:mod:`deploy.executor_env` -> ``spark-submit --archives env.tar.gz#environment``, Spark's own
recommendation for Python dependencies with C extensions such as python-qpid-proton; see
docs/deployment.md). ``--jobs-only`` skips the wheels (an image that installed them already).
``jobs.zip`` holds the repository's job code (``jobs``), which is the application's own code:
ship it with ``--py-files`` like any PySpark application's modules.

Every build is reproducible: the wheels are built by hatchling (sorted entries, fixed
timestamps) and the archive with sorted entries and fixed timestamps, so two builds of the
same tree are byte-identical and a deployment can compare checksums.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("jobs",)
DISTRIBUTIONS = ("message_model", "connectors", "bridge")
DEFAULT_OUT_DIR = REPO_ROOT / "dist"
DEFAULT_OUT = DEFAULT_OUT_DIR / "jobs.zip"
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


def build_wheels(out_dir: Path = DEFAULT_OUT_DIR, root: Path = REPO_ROOT) -> list[Path]:
    """Build the wheel of every distribution into ``out_dir`` (no dependencies) and return their paths.

    pip builds into an empty folder first, so the answer is what this build made even where
    ``out_dir`` already holds wheels (a rebuild of the same version, or older versions beside it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "315532800")}  # 1980-01-01
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as fresh:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", fresh]
        subprocess.run([*cmd, *(str(root / d) for d in DISTRIBUTIONS)], check=True, env=env)
        return [wheel.replace(out_dir / wheel.name) for wheel in sorted(Path(fresh).glob("*.whl"))]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.package", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where the wheels and jobs.zip go (default: dist)")
    parser.add_argument(
        "--jobs-only", action="store_true", help="only jobs.zip (where the wheels are installed already, e.g. in an image)"
    )
    args = parser.parse_args(argv)
    for wheel in [] if args.jobs_only else build_wheels(args.out_dir):
        print(f"{wheel} (sha256 {sha256(wheel)[:16]})")
    out = build(args.out_dir / DEFAULT_OUT.name)
    with zipfile.ZipFile(out) as zf:
        count = len(zf.namelist())
    print(f"{out} ({count} files, sha256 {sha256(out)[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
