#!/usr/bin/env bash
# Issue 14 on a GPU host (nvidia-h200-x2): suites/test_workload.py with the layouts that fit
# 2 GPUs (tp2, pp2, dp2). Three healthy runs judged by the lab profile as committed; the
# profile's workload floors derived from them (and its other floors from run K, as before);
# a run judged by those; NCCL_P2P_DISABLE=1 exported; the layouts over 2 emulated nodes
# (1 GPU each: every group crosses nodes); rank/ops.py's concurrent timing on two NCCL
# communicators (validation/beside_gpu.py). From the repo root: bash validation/workload.sh;
# $OUT/workload.tgz holds the outputs, bundles and the derived profile.
set -u
W=${OUT:-/tmp/gpufabric-workload}
mkdir -p "$W/runs" "$W/profiles-lab2"
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH="$(pwd)"
env | grep -E '^(NCCL|TORCH_SYMM|NVSHMEM)' | sort
run() {  # LABEL PROFILE-DIR [more pytest args]
  local label=$1 profiles=$2
  shift 2
  timeout 150 python3 -m pytest -p pytest_gpufabric.plugin -p no:cacheprovider -rA \
    suites/test_workload.py --gpufabric-thresholds "$profiles" \
    --gpufabric-instance h200-2gpu-lab --gpufabric-allow-uncertified \
    --gpufabric-artifacts "$W/runs/$label" --gpufabric-json "$W/runs/$label.report.json" "$@" \
    > "$W/runs/$label.out.txt" 2>&1
  echo "$label: exit $?"; grep -E "^(PASSED|FAILED|SKIPPED)|passed|failed" "$W/runs/$label.out.txt" | tail -16
}
for i in 1 2 3; do run healthy$i validation/profiles-lab2; done
K=tests/data/runs/2026-11-30-h200x2-K
python3 -m pytest_gpufabric.floors $K/healthy{1,2,3}/report.json "$W"/runs/healthy{1,2,3}.report.json \
  --name h200-2gpu-lab --extends hgx-h200-4gpu --host-label "nvidia-h200-x2 (2×H200 NVSwitch VM)" \
  --section intra_node --section network_only --section nvlink_only --section workload \
  --section-margins network_only:0=0.5 --section-margins nvlink_only:256MiB=0.9,0=0.5 \
  > "$W/profiles-lab2/h200-2gpu-lab.yaml"
echo "floors: exit $?"; sed -n '/^workload:/,$p' "$W/profiles-lab2/h200-2gpu-lab.yaml"
run judged "$W/profiles-lab2"
NCCL_P2P_DISABLE=1 run p2p-off "$W/profiles-lab2"
run nodes2 "$W/profiles-lab2" --gpufabric-emulate-nodes 2 --gpufabric-layout 2x1x1,1x2x1,1x1x2
grep -E "layout: |network|NET/" "$W/runs/nodes2.out.txt" | head -8
timeout 120 python3 validation/beside_gpu.py > "$W/runs/beside_gpu.txt" 2>&1
echo "beside_gpu: exit $?"; tail -8 "$W/runs/beside_gpu.txt"
echo "rank processes left: $(pgrep -f 'pytest_gpufabric.rank.worker|beside_gpu' | wc -l)"
tar czf /tmp/workload.tgz -C "$W" runs profiles-lab2 && mv /tmp/workload.tgz "$W/workload.tgz" \
  && rm -rf "$W/runs" "$W/profiles-lab2"
