#!/usr/bin/env bash
# A curator's deposit script: bag a curated workspace, validate it, rehearse the deposit,
# deposit it, and resume if the connection drops. Usage:
#
#   ZENODO_TOKEN=... examples/deposit.sh WORKSPACE https://zenodo.org [COMMUNITY]
#
# The token is read from the environment by `curated deposit --token-env`; it never
# reaches the log, the receipt, the bag or an error message.
set -euo pipefail

ws=${1:?usage: deposit.sh WORKSPACE URL [COMMUNITY]}
url=${2:?usage: deposit.sh WORKSPACE URL [COMMUNITY]}
community=${3:-}
target_opt=()
[ -n "$community" ] && target_opt=(--target "$community")
bag="$ws/package/$(basename "$ws")-bag"

# 1. the log must verify end to end before anything leaves the building
curated log "$ws" --verify --files

# 2. documentation is current: README (with pictures) and FAIR checklist
curated readme "$ws"
curated fair "$ws"

# 3. one bag; Zenodo caps a record at 100 files, so each Zarr store goes in as one archive
if [ ! -d "$bag" ]; then
  curated bag "$ws" "$bag" --profile btr --zarr archive --processes 2
fi
curated bag validate "$bag" --profile btr

# 4. rehearse: preflight against Zenodo's limits, print the planned calls and what Zenodo
#    would refuse or drop (with the token set it reads the instance with GETs; writes nothing)
curated deposit "$bag" --to zenodo --url "$url" "${target_opt[@]}" --token-env ZENODO_TOKEN --dry-run

# 5. deposit; on a dropped connection, resume where it stopped (confirmed files are not re-sent)
for attempt in 1 2 3; do
  resume=()
  [ "$attempt" -gt 1 ] && resume=(--resume)
  if curated deposit "$bag" --to zenodo --url "$url" "${target_opt[@]}" --token-env ZENODO_TOKEN "${resume[@]}"; then
    break
  fi
  echo "deposit attempt $attempt failed; resuming in 30 s" >&2
  sleep 30
done

# 6. the receipt (record id, DOI, per-file checksums) is in the workspace, and the log says so
cat "$ws/package/receipt.json"
curated log "$ws" --verify
# the deposited bag carries the log up to its own entry: later checks prove nothing was cut since
curated log "$ws" --verify --anchor "$bag"
# and keep the head outside the workspace (a ticket, a lab notebook) for the next curator
curated log "$ws" --head
