"""Running the command line as a user does: a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cache: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m workers.cli ARGS` over the cache directory `cache`."""
    env = {**os.environ, "QK_ATLAS_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)
