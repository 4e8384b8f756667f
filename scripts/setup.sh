#!/usr/bin/env bash
# Set up a virtual environment in .venv with qk-atlas installed (editable).
#   scripts/setup.sh          -> the app
#   scripts/setup.sh test     -> the app plus test tools, and Debian's Chromium + ChromeDriver when missing
# torch is installed first, pinned to the CPU wheel this kind of machine carries (TORCH_SPEC overrides),
# and only when no torch is importable, so pip never pulls a multi-GB CUDA build here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${1:-}"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
if [ "$EXTRAS" = "test" ]; then
  .venv/bin/python -m pip install --quiet -e ".[test,team]"
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v redis-server >/dev/null; then
    echo "setup: installing Debian chromium, chromium-driver and redis-server for the tests"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver redis-server >/dev/null
  fi
else
  .venv/bin/python -m pip install --quiet -e .
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch, transformers, dash; print("torch", torch.__version__, "| transformers", transformers.__version__, "| dash", dash.__version__)'))"
