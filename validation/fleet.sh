#!/usr/bin/env bash
# Issue 12 on a GPU host (device kind nvidia-h200-x2): fleet mode over 4 emulated nodes that
# share the host's GPUs (each node has both GPUs, its ranks one NCCL host by NCCL_HOSTID),
# judged by the lab profile of this machine. From the repo root: bash validation/fleet.sh
#   healthy  every node passes its gate and every pair
#   faults   node1 with NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 (fails its own gate: transports),
#            node2 with NCCL_SOCKET_IFNAME=bogus0 in pools with other nodes (pair isolation)
#   frozen   a rank of node2 stops itself (SIGSTOP) when its all_reduce arrives, in pools with
#            other nodes; 10 s job deadline: named with its node, NCCL RAS asked
# The tree runs uninstalled (PYTHONPATH). Ranks inherit NCCL_NVLS_ENABLE,
# TORCH_SYMM_MEM_DISABLE_MULTICAST and NVSHMEM_DISABLE_NVLS from this environment unchanged.
# Outputs are packed into $OUT/fleet.tgz.
set -u
TREE=$(pwd)
W=${OUT:-/tmp/gpufabric-fleet}
mkdir -p "$W/runs"
exec > >(tee -a "$W/runs/console.log") 2>&1
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH="$TREE"
nvidia-smi -L
env | grep -E '^(NCCL|TORCH_SYMM|NVSHMEM)' | sort

fleet() {  # LABEL [pytest args...]
  local label=$1; shift
  echo; echo "=== $label ($(date -u +%H:%M:%S)) ${GPUFABRIC_TEST_FLEET_FAULT:-}"
  local t0=$(date +%s.%N)
  timeout 420 python3 -m pytest -p pytest_gpufabric.plugin -p no:cacheprovider -rA \
    suites/test_fleet.py --gpufabric-fleet --gpufabric-emulate-nodes 4 \
    --gpufabric-thresholds validation/profiles-lab2 --gpufabric-instance h200-2gpu-lab \
    --gpufabric-json "$W/runs/$label.json" --gpufabric-artifacts "$W/runs/$label" \
    --gpufabric-metrics "$W/runs/$label.prom" "$@" > "$W/runs/$label.txt" 2>&1
  echo "$label: exit $? in $(echo "$(date +%s.%N) - $t0" | bc) s"
  tail -5 "$W/runs/$label.txt"
  echo "rank processes left: $(pgrep -f pytest_gpufabric.rank.worker | wc -l)"
}

fleet healthy
GPUFABRIC_TEST_FLEET_FAULT="gpufabric-node1:NCCL_P2P_DISABLE=1,NCCL_SHM_DISABLE=1;pairs@gpufabric-node2:NCCL_SOCKET_IFNAME=bogus0" \
  fleet faults
GPUFABRIC_TEST_FLEET_FAULT="pairs@gpufabric-node2:GPUFABRIC_TEST_RANK_FREEZE=1" \
  fleet frozen --gpufabric-timeout 10
# keep the bundles small: NCCL logs and rank output, no core files
tar czf /tmp/fleet.tgz -C "$W" runs && mv /tmp/fleet.tgz "$W/fleet.tgz" && rm -rf "$W/runs"
