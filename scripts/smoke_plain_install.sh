#!/usr/bin/env bash
# Plain-install smoke test: a fresh virtual environment with `pip install .` and no extras
# (at the locked versions) runs init -> metadata -> convert -> bag -> bag validate ->
# deposit to a folder -> log verify. It catches runtime imports that only the dev extra
# provides, which the test suite (run with [dev]) cannot see.
#
#   bash scripts/smoke_plain_install.sh           # builds a throw-away venv under $TMPDIR
#   CURATED=/path/to/curated bash scripts/smoke_plain_install.sh   # reuse an installed CLI
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ -z "${CURATED:-}" ]; then
  "$PY" -m venv "$WORK/venv"
  VPY="$WORK/venv/bin/python"
  "$VPY" -m pip install --quiet --upgrade pip
  "$VPY" -m pip install --quiet "torch==2.13.0"
  "$VPY" -m pip install --quiet -c "$ROOT/constraints.txt" "$ROOT"
  # a plain install must not carry the development tools
  for dev in pytest linkml bioimageio.spec rocrate_validator; do
    if "$VPY" -c "import $dev" 2>/dev/null; then
      echo "smoke: $dev is importable, so this is not a plain install" >&2
      exit 1
    fi
  done
  CURATED="$WORK/venv/bin/curated"
else
  VPY=$(head -1 "$(command -v "$CURATED")" | sed 's/^#!//')
fi

cd "$WORK"
"$VPY" - <<'PY'
import numpy as np
import tifffile

rng = np.random.default_rng(0)
tifffile.imwrite("stack.tif", rng.integers(0, 255, (16, 64, 64), dtype=np.uint8))
PY
run() { echo "+ curated $*"; "$CURATED" "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log"; exit 1; }; }
run init ws --title "Plain-install smoke test"
run metadata set ws study.description "A 16-slice random stack that checks a plain install."
run metadata set ws 'study.authors[0]' '{family_name: Curator, given_name: Ada, email: ada@example.org, contact: true}'
run metadata set ws study.publisher "Example University"
run metadata set ws study.license CC-BY-4.0
run convert stack.tif ws/derived/stack.ome.zarr --voxel-size 20 5 5 --workspace ws
run bag ws bag1
run bag validate bag1
run deposit bag1 --to directory --url "$WORK/repository" --publish
run log ws --verify --files
test -n "$(ls -A "$WORK/repository")" || { echo "smoke: nothing was deposited" >&2; exit 1; }
echo "smoke: plain install ran init, convert, bag, bag validate, deposit and log verify"
