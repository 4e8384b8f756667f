#!/usr/bin/env bash
# Set up a virtual environment in .venv with qk-atlas installed (editable).
#   scripts/setup.sh          -> the app
#   scripts/setup.sh test     -> the app plus test tools, and Debian's Chromium + ChromeDriver when missing
# torch is installed first, pinned to the CPU wheel this kind of machine carries (TORCH_SPEC overrides),
# and only when no torch is importable, so pip never pulls a multi-GB CUDA build here.
# The package is reinstalled only when pyproject.toml or the extras asked for changed since the last install
# (a stamp in .venv), so a second `make serve` starts at once and prints one line.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${1:-}"
STAMP=.venv/.qk-atlas-installed

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
if ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
  echo "setup: installing $TORCH_SPEC"
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
if [ "$EXTRAS" = "test" ]; then
  SPEC=".[test,team]"
else
  SPEC="."
fi
WANTED="$(sha256sum pyproject.toml | cut -d' ' -f1) $SPEC"
INSTALLED="$(cat "$STAMP" 2>/dev/null || true)"
# an install for the test extras also serves the plain app
if [ "$INSTALLED" != "$WANTED" ] && ! { [ "$SPEC" = "." ] && [ "${INSTALLED% *}" = "${WANTED% *}" ]; } \
   || ! .venv/bin/python -c "import workers, dashboard" 2>/dev/null; then
  echo "setup: installing qk-atlas ($SPEC)"
  # pip's and setuptools' warnings go to a log, shown only when the install fails
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$SPEC" > .venv/setup.log 2>&1; then
    cat .venv/setup.log
    exit 1
  fi
  echo "$WANTED" > "$STAMP"
fi
if [ "$EXTRAS" = "test" ]; then
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v redis-server >/dev/null; then
    echo "setup: installing Debian chromium, chromium-driver and redis-server for the tests"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver redis-server >/dev/null
  fi
fi
echo "setup: ready ($(.venv/bin/python -c 'from importlib.metadata import version as v; print("torch", v("torch"), "| transformers", v("transformers"), "| dash", v("dash"))'))"
