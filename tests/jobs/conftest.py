"""Spark tests run Python UDFs (pandas) in worker processes: make them use this interpreter.

Without ``PYSPARK_PYTHON`` Spark starts workers with ``python3`` from PATH,
which lacks the venv's numpy/pandas. Belongs in the root conftest (before the
session-scoped ``spark`` fixture starts the JVM); harmless to keep here.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
