"""The architecture rules hold: workers never import Dash; the dashboard never imports torch."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import workers


def imported_after(statement: str) -> set[str]:
    """Top-level module names loaded in a fresh interpreter after running `statement`."""
    code = f"import sys; {statement}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(done.stdout.split())


def test_workers_never_import_dash():
    modules = [f"workers.{m.name}" for m in pkgutil.iter_modules(workers.__path__)]
    loaded = imported_after("; ".join(f"import {m}" for m in modules))
    assert "dash" not in loaded and "plotly" not in loaded


def test_dashboard_never_imports_torch():
    loaded = imported_after("import dashboard.app; app = dashboard.app.create_app(start_worker=False)")
    assert "dash" in loaded
    assert "torch" not in loaded and "transformers" not in loaded
