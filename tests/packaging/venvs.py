"""Fresh virtual environments outside the checkout, set up the way a user of the wheels sets one up.

Nothing of the repository leaks in: the process environment loses ``PYTHONPATH``,
``PYSPARK_PYTHON``/``PYSPARK_DRIVER_PYTHON`` (the test session points them at the
repository's ``.venv``) and ``VIRTUAL_ENV``, and commands run in the venv's own folder.
"""

from __future__ import annotations

import os
import subprocess
import venv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO_ROOT / "requirements.txt"
_LEAKS = ("PYTHONPATH", "PYTHONHOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV", "SPARK_HOME")


@dataclass(frozen=True)
class UserVenv:
    """A virtual environment in ``root`` (outside the checkout) and how to run things in it."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def activated_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """What ``source bin/activate`` gives: the venv's ``bin`` first on PATH, ``VIRTUAL_ENV`` set, no repository paths."""
        env = {k: v for k, v in os.environ.items() if k not in _LEAKS}
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(self.root)
        return {**env, **(extra or {})}

    def run(self, argv: Sequence[str], timeout: float, extra_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` in the venv's folder with the activated environment; output captured as text."""
        return subprocess.run(
            list(argv), cwd=self.root, env=self.activated_env(extra_env), capture_output=True, text=True, timeout=timeout
        )

    def pip_install(self, wheels: Path, *requirements: str, timeout: float = 600) -> None:
        """``pip install --find-links <wheels> -c requirements.txt ...``: the project's wheels, the rest pinned as the repository pins it."""
        done = self.run(
            [str(self.python), "-m", "pip", "install", "--progress-bar", "off", "--find-links", str(wheels), "-c", str(CONSTRAINTS),
             *requirements],
            timeout,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def new_venv(root: Path) -> UserVenv:
    """Create a virtual environment with pip at ``root``, which must not be inside the checkout."""
    root = Path(root).resolve()
    if root.is_relative_to(REPO_ROOT):
        raise ValueError(f"{root} is inside the checkout {REPO_ROOT}; use a temporary folder")
    venv.EnvBuilder(with_pip=True, symlinks=True).create(root)
    return UserVenv(root)


def wheel_version(wheels: Path, distribution: str) -> str:
    """The version in the file name of ``distribution``'s wheel (``pyspark_amqp-0.2.0-py3-none-any.whl`` -> ``0.2.0``)."""
    (wheel,) = Path(wheels).glob(f"{distribution.replace('-', '_')}-*.whl")
    return wheel.name.split("-")[1]
