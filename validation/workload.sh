#!/usr/bin/env bash
# Issue 14 on a GPU host (nvidia-h200-x2): suites/test_workload.py with the layouts that fit
# 2 GPUs (tp2, pp2, dp2), judged by the lab profile (fair share of its floors), healthy and
# with NCCL_P2P_DISABLE=1 exported. From the repo root: bash validation/workload.sh;
# $OUT/workload.tgz holds the outputs and bundles.
set -u
W=${OUT:-/tmp/gpufabric-workload}
mkdir -p "$W/runs"
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH="$(pwd)"
env | grep -E '^(NCCL|TORCH_SYMM|NVSHMEM)' | sort
run() {  # LABEL
  timeout 280 python3 -m pytest -p pytest_gpufabric.plugin -p no:cacheprovider -rA \
    suites/test_workload.py --gpufabric-thresholds validation/profiles-lab2 \
    --gpufabric-instance h200-2gpu-lab --gpufabric-allow-uncertified \
    --gpufabric-artifacts "$W/runs/$1" --gpufabric-json "$W/runs/$1.report.json" \
    > "$W/runs/$1.out.txt" 2>&1
  echo "$1: exit $?"; grep -E "^(PASSED|FAILED|SKIPPED)|passed|failed" "$W/runs/$1.out.txt" | tail -16
}
run healthy
NCCL_P2P_DISABLE=1 run p2p-off
echo "rank processes left: $(pgrep -f pytest_gpufabric.rank.worker | wc -l)"
tar czf /tmp/workload.tgz -C "$W" runs && mv /tmp/workload.tgz "$W/workload.tgz" && rm -rf "$W/runs"
