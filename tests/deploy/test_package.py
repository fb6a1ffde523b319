"""The jobs archive and the wheels: what they hold, that they are reproducible, and that the jobs import from the zip alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy import package

pytestmark = pytest.mark.unit


def test_the_archive_holds_the_jobs_and_nothing_else(tmp_path: Path) -> None:
    out = package.build(tmp_path / "a.zip")
    names = zipfile.ZipFile(out).namelist()
    assert "jobs/windowed_max.py" in names and "jobs/__init__.py" in names
    assert {n.split("/")[0] for n in names} == set(package.PACKAGES)
    assert not [n for n in names if "__pycache__" in n or not n.endswith(".py")]


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    assert package.sha256(package.build(tmp_path / "a.zip")) == package.sha256(package.build(tmp_path / "b.zip"))


def test_the_archived_code_imports_nothing_else_of_this_repository() -> None:
    assert package.missing_local_imports() == set()


def test_a_missing_package_is_reported(tmp_path: Path) -> None:
    for name, body in (("jobs", "import helpers\n"), ("helpers", "")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(body)
    assert package.missing_local_imports(tmp_path, ("jobs",)) == {"helpers"}
    with pytest.raises(SystemExit, match="helpers"):
        package.build(tmp_path / "out.zip", root=tmp_path, packages=("jobs",))


def test_the_jobs_import_from_the_zip_and_the_installed_connector(tmp_path: Path) -> None:
    """An isolated interpreter (no PYTHONPATH, no cwd on sys.path) in a folder without the repository:
    the jobs come from the zip, the connector from the installed distribution."""
    out = package.build(tmp_path / "jobs.zip")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import jobs.windowed_max, pyspark_amqp;"
        "assert jobs.windowed_max.__file__.startswith(sys.argv[1]), jobs.windowed_max.__file__;"
        "print(pyspark_amqp.DefaultSource.name())"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code, str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "amqp"


def test_make_dist_gives_the_same_bytes_for_the_same_tree(tmp_path: Path) -> None:
    """What ``make dist`` writes (the three wheels and jobs.zip), built from the checkout and from a copy
    of it in another folder whose files all have new modification times: byte-identical."""
    copy = tmp_path / "copy"
    for folder in (*package.DISTRIBUTIONS, *package.PACKAGES):
        shutil.copytree(
            package.REPO_ROOT / folder, copy / folder, copy_function=shutil.copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )  # fmt: skip
    assert (copy / "jobs" / "__init__.py").stat().st_mtime != (package.REPO_ROOT / "jobs" / "__init__.py").stat().st_mtime
    builds = {}
    for name, root in (("a", package.REPO_ROOT), ("b", copy)):
        out = tmp_path / name
        package.build_wheels(out, root=root)
        package.build(out / "jobs.zip", root=root)
        builds[name] = {p.name: package.sha256(p) for p in sorted(out.iterdir())}
    assert {n.split("-")[0] for n in builds["a"]} == {"amqp_message_model", "pyspark_amqp", "amqp_kafka_bridge", "jobs.zip"}
    assert builds["a"] == builds["b"]


def test_jobs_only_builds_no_wheels(tmp_path: Path) -> None:
    """``--jobs-only`` (the image, where the wheels are installed already) writes jobs.zip alone."""
    assert package.main(["--jobs-only", "--out-dir", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["jobs.zip"]


def test_build_wheels_names_this_versions_wheels_beside_stale_ones(tmp_path: Path) -> None:
    """A rebuild into a folder that already holds this version's wheels and an older one answers
    with exactly the three wheels of the current versions (it once answered with every wheel)."""
    first = package.build_wheels(tmp_path)
    stale = tmp_path / "pyspark_amqp-0.0.1-py3-none-any.whl"
    stale.write_bytes(b"an older build")
    again = package.build_wheels(tmp_path)
    assert again == first
    assert stale not in again
    assert {w.name.split("-")[0] for w in again} == {"amqp_message_model", "pyspark_amqp", "amqp_kafka_bridge"}
