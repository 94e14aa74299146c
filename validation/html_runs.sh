#!/usr/bin/env bash
# Issue 13 on a GPU host (nvidia-h200-x2): the whole gate with NCCL_P2P_LEVEL=LOC (no P2P
# between the GPUs: NCCL falls back to SHM), judged by the lab profile, with the HTML report.
# From the repo root: bash validation/html_runs.sh; $OUT/html-runs.tgz holds the bundle.
set -u
W=${OUT:-/tmp/gpufabric-html}
mkdir -p "$W/runs"
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH="$(pwd)"
env | grep -E '^(NCCL|TORCH_SYMM|NVSHMEM)' | sort
NCCL_P2P_LEVEL=LOC timeout 400 python3 -m pytest -p pytest_gpufabric.plugin -p no:cacheprovider \
  suites/ --gpufabric-thresholds validation/profiles-lab2 --gpufabric-instance h200-2gpu-lab \
  --gpufabric-artifacts "$W/runs/p2p-loc" --gpufabric-json "$W/runs/p2p-loc.report.json" \
  --gpufabric-html "$W/runs/p2p-loc.html" > "$W/runs/p2p-loc.out.txt" 2>&1
echo "p2p-loc: exit $?"
tail -25 "$W/runs/p2p-loc.out.txt"
echo "rank processes left: $(pgrep -f pytest_gpufabric.rank.worker | wc -l)"
tar czf /tmp/html-runs.tgz -C "$W" runs && mv /tmp/html-runs.tgz "$W/html-runs.tgz" && rm -rf "$W/runs"
