#!/usr/bin/env bash
# The split-cost check (suites/test_topology.py) on a 2×H200 NVSwitch host (device kind
# nvidia-h200-x2), from this checkout, uninstalled, with the 2-GPU smoke overlay:
#
#   bash validation/topology.sh [p2p-off]
#
# 1. live: each collective on one NCCL host and with NCCL_HOSTID per rank (bundle kept);
# 2. replay of that bundle (must judge alike);
# 3. with p2p-off: the same with NCCL_P2P_DISABLE=1 exported (one host falls back to SHM).
# Logs, bundles and reports go to $OUT. Ranks inherit NCCL_NVLS_ENABLE,
# TORCH_SYMM_MEM_DISABLE_MULTICAST and NVSHMEM_DISABLE_NVLS from this environment unchanged.
set -u
NEW=$(pwd)
exec > >(tee "$OUT/console.log") 2>&1
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH="$NEW"
stage() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
run() {  # run LABEL SECONDS [pytest args...]
  local label=$1 limit=$2; shift 2
  local t0=$(date +%s%N)
  timeout "$limit" python3 -m pytest -p pytest_gpufabric.plugin suites/test_topology.py \
    -p no:cacheprovider -rA --gpufabric-instance auto \
    --gpufabric-thresholds "$NEW/validation/profiles-smoke" --gpufabric-allow-uncertified \
    --gpufabric-json "$OUT/$label.json" --junitxml "$OUT/$label.xml" "$@" > "$OUT/$label.log" 2>&1
  local rc=$?
  echo "$label: exit $rc after $(( ($(date +%s%N) - t0) / 1000000 )) ms; $(tail -1 "$OUT/$label.log")"
}

stage host
nvidia-smi -L
nvidia-smi topo -m | head -4
env | grep -E '^(NCCL|TORCH|NVSHMEM|CUDA)_' | sort
python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.nccl.version(), torch.cuda.device_count())'

stage "live: one host vs every rank its own NCCL host"
run live 300 --gpufabric-artifacts "$OUT/art-live"
stage "replay of the live bundle"
run replay 120 --gpufabric-replay "$OUT/art-live"
if [ "${1:-}" = p2p-off ]; then
  stage "NCCL_P2P_DISABLE=1"
  NCCL_P2P_DISABLE=1 run p2poff 240 --gpufabric-artifacts "$OUT/art-p2poff"
fi

stage summary
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for label in ("live", "replay", "p2poff"):
    path = out / f"{label}.json"
    if not path.exists():
        continue
    report = json.loads(path.read_text())
    print(f"{label}: {report['summary']}; duration {report.get('duration_s', '?')} s")
    for t in report["tests"]:
        p = t["properties"]
        if "busbw_gbps" not in p:
            print(f"  {t['nodeid']}: {t['outcome']}: {t.get('message', '')[:300]}")
            continue
        print(f"  {p['collective']:15} {int(p['bytes']) >> 20:5} MiB  one host {p['baseline_busbw_gbps']:8.2f} GB/s"
              f" [{p['baseline_transport']}, nNodes {p.get('baseline_nccl_nodes')}]"
              f"  split {p['busbw_gbps']:7.2f} GB/s [{p['transport']}, nNodes {p.get('nccl_nodes')}]"
              f"  ratio {p['split_ratio']:.4f} slowdown {p['slowdown']}x  {t['outcome']} ({t.get('duration_s', 0):.1f} s)")
PY
ls -la "$OUT"
