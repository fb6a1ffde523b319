"""Pack the Python environment a Spark cluster runs the connector in: ``env.tar.gz`` for ``--archives``.

    python -m deploy.package --out-dir dist            # the wheels and jobs.zip
    python -m deploy.executor_env --wheels dist        # -> dist/environment/ and dist/env.tar.gz
    cd dist && PYSPARK_PYTHON=./environment/bin/python spark-submit \\
        --archives env.tar.gz#environment --py-files jobs.zip ../jobs/windowed_max.py ...

python-qpid-proton and pyarrow are C extensions, which ``--py-files`` cannot carry; Spark's
"Python Package Management" guide ships such dependencies as a packed virtual environment
(venv-pack) that every executor unpacks into its working folder as ``./environment``. The
environment holds the connector's wheels (``pyspark-amqp``, ``amqp-message-model``) and
their dependencies **except pyspark**: executors import pyspark from their Spark
installation (``$SPARK_HOME/python/lib/pyspark.zip``), so the archive stays ~110 MB instead
of ~550 MB and can never disagree with the cluster's Spark version.

The virtual environment the archive is packed from is kept (``environment/`` beside it):
in client mode the driver runs ``./environment/bin/python`` from its working folder too
(see :func:`submit_env` and docs/deployment.md for why), so run ``spark-submit`` from the
folder that holds it. venv-pack does not copy the interpreter: every host needs the same
Python at the same path (``pyvenv.cfg``'s ``home``), as with any packed virtualenv.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONSTRAINTS = REPO_ROOT / "requirements.txt"
# What executors import: the connector and the message model it depends on (not the bridge).
EXECUTOR_WHEELS = ("pyspark_amqp", "amqp_message_model")
# Provided by the cluster's Spark (pyspark.zip and py4j on every executor's PYTHONPATH).
FROM_SPARK = frozenset({"pyspark", "py4j"})
ARCHIVE_NAME = "env.tar.gz"
ENV_NAME = "environment"
EXECUTOR_PYTHON = f"./{ENV_NAME}/bin/python"


class ExecutorEnvError(RuntimeError):
    """The environment could not be built; the message says what is missing and how to get it."""


def find_wheels(wheels_dir: Path, names: Iterable[str] = EXECUTOR_WHEELS) -> list[Path]:
    """The newest wheel of each distribution (by file name) in ``wheels_dir``; fails naming what is missing."""
    found: list[Path] = []
    for name in names:
        candidates = sorted(Path(wheels_dir).glob(f"{name}-*.whl"))
        if not candidates:
            raise ExecutorEnvError(f"no {name} wheel in {wheels_dir}: build the wheels first (make dist)")
        found.append(candidates[-1])
    return found


def _project_names(wheels: Iterable[Path]) -> set[str]:
    return {_normalise(w.name.split("-")[0]) for w in wheels}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(wheels: Sequence[Path]) -> list[str]:
    """The wheels' ``Requires-Dist`` without extras, without what Spark provides and without the wheels themselves.

    Read from the wheels' metadata so that the environment follows the distributions'
    declared dependencies (python-qpid-proton, pyarrow, pandas) instead of a second list.
    """
    own = _project_names(wheels)
    requirements: list[str] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            for line in zf.read(metadata).decode("utf-8").splitlines():
                if not line.startswith("Requires-Dist:"):
                    continue
                requirement = line.split(":", 1)[1].strip()
                if ";" in requirement and "extra" in requirement.split(";", 1)[1]:
                    continue
                name = _normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))  # type: ignore[union-attr]
                if name not in own and name not in FROM_SPARK and requirement not in requirements:
                    requirements.append(requirement)
    return requirements


def _clean_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH, so nothing of a checkout leaks into the new venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def build_venv(
    prefix: Path, wheels_dir: Path, constraints: Path | None = DEFAULT_CONSTRAINTS, pip_args: Sequence[str] = ()
) -> Path:
    """Create a fresh virtual environment at ``prefix`` with the executor wheels and their runtime dependencies."""
    prefix = Path(prefix)
    if prefix.exists():
        raise ExecutorEnvError(f"{prefix} exists; remove it or choose another --env-dir")
    wheels = find_wheels(wheels_dir)
    requirements = runtime_requirements(wheels)
    # No pip inside (executors never install anything): this interpreter's pip installs into it.
    venv.EnvBuilder(with_pip=False, symlinks=True).create(prefix)
    pip = [sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install", "--progress-bar", "off", "--quiet"]
    pip += list(pip_args)
    if constraints is not None:
        pip += ["-c", str(constraints)]
    env = _clean_env()
    subprocess.run([*pip, *requirements], check=True, env=env)
    # --no-deps: their dependency on pyspark is met on the cluster by Spark itself.
    subprocess.run([*pip, "--no-deps", "--no-warn-conflicts", *(str(w) for w in wheels)], check=True, env=env)
    return prefix


def pack(prefix: Path, out: Path, compress_level: int = 1) -> Path:
    """Pack ``prefix`` into ``out`` with venv-pack (written beside, then moved, so no half archive is left)."""
    import venv_pack

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.tar.gz")
    venv_pack.pack(prefix=str(prefix), output=str(tmp), force=True, compress_level=compress_level)
    tmp.replace(out)
    return out


def build(
    wheels_dir: Path, out: Path | None = None, env_dir: Path | None = None, constraints: Path | None = DEFAULT_CONSTRAINTS
) -> tuple[Path, Path]:
    """Build the venv (default ``<wheels_dir>/environment``) and its archive (default ``<wheels_dir>/env.tar.gz``)."""
    wheels_dir = Path(wheels_dir)
    env_dir = Path(env_dir) if env_dir else wheels_dir / ENV_NAME
    out = Path(out) if out else wheels_dir / ARCHIVE_NAME
    build_venv(env_dir, wheels_dir, constraints)
    return env_dir, pack(env_dir, out)


def submit_env(base: Mapping[str, str] | None = None, spark_home: str | None = None) -> dict[str, str]:
    """The environment for ``spark-submit`` (client mode) with the packed environment.

    ``PYSPARK_PYTHON=./environment/bin/python`` is what the executors run, in the working
    folder where they unpacked the archive. Spark 4.2 also runs the *driver-side* planning of
    a Python data source that it found by itself (``format("amqp")`` without ``register``)
    with this same interpreter path, resolved against the driver's working folder, so
    ``spark-submit`` runs where ``./environment`` exists. ``PYSPARK_DRIVER_PYTHON`` is
    removed: Spark would prefer it for that interpreter path and the executors would then
    run the driver's Python instead of the shipped one. ``PYTHONPATH`` is removed so that
    nothing but the environment and the ``--py-files`` provides the code. ``spark_home``:
    pip's ``spark-submit`` would otherwise ask ``PYSPARK_PYTHON`` (which has no pyspark) for it.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in ("PYTHONPATH", "PYSPARK_DRIVER_PYTHON")}
    env["PYSPARK_PYTHON"] = EXECUTOR_PYTHON
    if spark_home:
        env["SPARK_HOME"] = spark_home
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.executor_env", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument(
        "--wheels", type=Path, default=REPO_ROOT / "dist", help="folder with the wheels (make dist; default: dist)"
    )
    parser.add_argument("--out", type=Path, help=f"the archive (default: <wheels>/{ARCHIVE_NAME})")
    parser.add_argument("--env-dir", type=Path, help=f"the virtual environment to build and keep (default: <wheels>/{ENV_NAME})")
    parser.add_argument(
        "--constraints", type=Path, default=DEFAULT_CONSTRAINTS, help="pip constraints (default: requirements.txt)"
    )
    args = parser.parse_args(argv)
    try:
        env_dir, out = build(args.wheels, args.out, args.env_dir, args.constraints)
    except (ExecutorEnvError, subprocess.CalledProcessError) as err:
        print(f"executor_env: {err}", file=sys.stderr)
        return 1
    print(f"{out} ({out.stat().st_size / 1e6:.0f} MB) packed from {env_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
