#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtual environment in .venv with curated and its
# test/validator tools, at the versions CI tested (constraints.txt). Idempotent: re-running
# it only installs what is missing.
#
#   bash scripts/setup.sh             # the tested versions (constraints.txt)
#   bash scripts/setup.sh --upgrade   # re-resolve without the lock (then: python scripts/lock.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH="torch==2.13.0"
LOCK=(-c constraints.txt)
if [ "${1:-}" = "--upgrade" ]; then
  # everything to its newest allowed version, except PyTorch (kept at the CPU build below)
  PIN=$(mktemp)
  trap 'rm -f "$PIN"' EXIT
  echo "$TORCH" >"$PIN"
  LOCK=(--upgrade --upgrade-strategy eager -c "$PIN")
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The CPU build of PyTorch first: otherwise pip would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "$TORCH"
.venv/bin/python -m pip install --quiet "${LOCK[@]}" -e ".[dev]"
echo "set up .venv; run commands as .venv/bin/curated ... or first: source .venv/bin/activate"
