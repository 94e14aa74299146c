#!/usr/bin/env bash
# Issue 11 on a GPU host (device kind nvidia-h200-x2): measurement fidelity against nccl-tests,
# latency, time to verdict, faults with their causes, a node without a profile. From the repo
# root:
#
#   bash validation/fidelity.sh STAGE...
#
# Stages:
#   build      nccl-tests from .nccl-tests/ (an ignored folder with NVIDIA/nccl-tests' source)
#   gateN      the whole gate N times with the 2-GPU measurement overlay (every size and
#              section of the lab profile), then once with --gpufabric-prestart off
#   lab2       floors and latency ceilings from the gate's reports, by the floors tool
#   faults     NCCL_MAX_NCHANNELS=1, NCCL_SOCKET_IFNAME=bogus0 over two NCCL nodes, a 1 MiB
#              /dev/shm (unshare -m), judged by the lab2 profile
#   noprofile  no profile fits this node (shipped profiles only), healthy and NCCL_P2P_DISABLE=1
#   compareN   benchmarks/nccl_compare.py, N rounds
# The tree runs uninstalled (PYTHONPATH). Ranks inherit NCCL_NVLS_ENABLE,
# TORCH_SYMM_MEM_DISABLE_MULTICAST and NVSHMEM_DISABLE_NVLS from this environment unchanged.
# Each stage packs its outputs into $OUT/<stage>.tgz (the device tool returns few files).
set -u
TREE=$(pwd)
W=${OUT:-/tmp/gpufabric-fidelity}
mkdir -p "$W"
exec > >(tee -a "$W/console.log") 2>&1
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH="$TREE"
stage() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
BUILD=/tmp/nt/build

# gate LABEL [pytest args...]: every suite; JSON $W/LABEL.json, bundle $W/LABEL/
gate() {
  local label=$1; shift
  local t0 t1
  t0=$(python3 -c 'import time; print(int(time.time() * 1000))')
  python3 -m pytest -p pytest_gpufabric.plugin suites/ -p no:cacheprovider -q -rfE \
    --junitxml "$W/$label.xml" --gpufabric-json "$W/$label.json" \
    --gpufabric-artifacts "$W/$label" "$@" > "$W/$label.log" 2>&1
  local rc=$?
  t1=$(python3 -c 'import os, sys; print(int(os.stat(sys.argv[1]).st_mtime * 1000))' "$W/$label.xml" 2>/dev/null || echo 0)
  printf '%-22s exit %s  JUnit written %6.1f s after start  %s\n' "$label" "$rc" \
    "$(( t1 - t0 ))e-3" "$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$W/$label.log" | tail -1)"
  grep -E "^(NOT )?CERTIFIED" "$W/$label.log" | head -1
}
measure=(--gpufabric-instance h200-2gpu-measure --gpufabric-thresholds "$TREE/validation/profiles-measure2")
lab=(--gpufabric-instance h200-2gpu-lab --gpufabric-thresholds "$W/profiles-lab2")

stage host
nvidia-smi -L
nvidia-smi topo -m | head -4
env | grep -E '^(NCCL|TORCH|NVSHMEM|CUDA)_' | sort
python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.nccl.version(), torch.cuda.device_count())'
nproc

for stage_name in "$@"; do
  case "$stage_name" in
    build)
      stage "build nccl-tests"
      NCCL_DIR=$(python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])')
      H=/tmp/ncclhome && rm -rf $H && mkdir -p $H/lib
      ln -s "$NCCL_DIR/include" $H/include
      ln -s "$NCCL_DIR"/lib/libnccl.so.2 $H/lib/libnccl.so
      ln -s "$NCCL_DIR"/lib/libnccl.so.2 $H/lib/libnccl.so.2
      rm -rf /tmp/nt && cp -r "$TREE/.nccl-tests" /tmp/nt
      (cd /tmp/nt && make -j16 MPI=0 NCCL_HOME=$H CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} \
        NVCC_GENCODE="-gencode=arch=compute_90,code=sm_90" > "$W/nccl-tests-make.log" 2>&1)
      echo "make exit $?"; ls "$BUILD" | tr '\n' ' '; echo ;;
    gate*)
      runs=${stage_name#gate}; runs=${runs:-3}
      stage "the whole gate, measurement overlay, $runs runs (prestart auto), then prestart off"
      for i in $(seq 1 "$runs"); do gate "healthy$i" "${measure[@]}"; done
      gate healthy-noprestart "${measure[@]}" --gpufabric-prestart off
      python3 - "$W" "$runs" <<'EOF'
import json, sys
from pathlib import Path
w, n = Path(sys.argv[1]), int(sys.argv[2])
for label in [f"healthy{i}" for i in range(1, n + 1)] + ["healthy-noprestart"]:
    d = json.loads((w / f"{label}.json").read_text())
    tests = sorted(d["tests"], key=lambda t: -t["duration_s"])
    print(label, "duration", d["duration_s"], "ahead", d["run"].get("pools_started_ahead"),
          "| slowest:", ", ".join(f"{t['nodeid'].split('::')[1]} {t['duration_s']:.1f}" for t in tests[:6]))
EOF
      ;;
    lab2)
      stage "lab2 profile from the healthy reports (floors tool)"
      mkdir -p "$W/profiles-lab2"
      python3 -m pytest_gpufabric.floors "$W"/healthy[0-9].json --name h200-2gpu-lab \
        --extends hgx-h200-4gpu --host-label "nvidia-h200-x2 (2×H200 NVSwitch VM)" \
        --section intra_node --section network_only --section nvlink_only \
        --section-margins network_only:0=0.5 --section-margins nvlink_only:256MiB=0.9,0=0.5 \
        > "$W/profiles-lab2/h200-2gpu-lab.yaml"
      echo "floors tool exit $?"; cat "$W/profiles-lab2/h200-2gpu-lab.yaml"
      stage "the healthy bundles replayed against it"
      for i in 1 2 3; do
        python3 -m pytest -p pytest_gpufabric.plugin suites/ -p no:cacheprovider -q \
          --gpufabric-replay "$W/healthy$i" "${lab[@]}" 2>&1 | grep -E "^(NOT )?CERTIFIED|passed|failed" | head -2
      done ;;
    faults)
      stage "NCCL_MAX_NCHANNELS=1 (lab2 floors)"
      NCCL_MAX_NCHANNELS=1 gate nchannels1 "${lab[@]}"
      sed -n '/^___.*test_busbw\[all_reduce-1GiB\]/,/^___/p' "$W/nchannels1.log" | head -20
      stage "NCCL_SOCKET_IFNAME=bogus0 over two NCCL nodes"
      NCCL_SOCKET_IFNAME=bogus0 gate bogus-ifname "${lab[@]}" --gpufabric-emulate-nodes 2
      grep -m1 -B2 -A12 "rank pool 'default'" "$W/bogus-ifname.log" | head -30
      stage "1 MiB /dev/shm (unshare -m)"
      export W TREE
      unshare -m bash -c 'mount -t tmpfs -o size=1m tmpfs /dev/shm && df -h /dev/shm | tail -1 && cd "$TREE" && \
        python3 -m pytest -p pytest_gpufabric.plugin suites/ -p no:cacheprovider -q -rfE \
        --junitxml "$W/tiny-shm.xml" --gpufabric-json "$W/tiny-shm.json" --gpufabric-artifacts "$W/tiny-shm" \
        --gpufabric-instance h200-2gpu-lab --gpufabric-thresholds "$W/profiles-lab2" > "$W/tiny-shm.log" 2>&1; echo "exit $?"'
      grep -E "^(NOT )?CERTIFIED|passed|failed" "$W/tiny-shm.log" | tail -2
      grep -m3 -A8 "rank pool '" "$W/tiny-shm.log" | head -40
      grep -m2 -A6 "test_host\[shm\]" "$W/tiny-shm.log" | head -16 ;;
    noprofile)
      stage "no profile fits this node (shipped profiles, auto)"
      gate noprofile --gpufabric-instance auto
      grep -E "^gpufabric: instance|make a profile|not judged: busbw floors" "$W/noprofile.log" | head -4
      NCCL_P2P_DISABLE=1 gate noprofile-p2p-off --gpufabric-instance auto
      sed -n '/^___.*intra_node_transport/,/^___/p' "$W/noprofile-p2p-off.log" | head -12 ;;
    compare*)
      rounds=${stage_name#compare}; rounds=${rounds:-3}
      stage "ours vs nccl-tests, $rounds rounds"
      export LD_LIBRARY_PATH=/tmp/ncclhome/lib:${LD_LIBRARY_PATH:-}
      python3 benchmarks/nccl_compare.py --nccl-tests "$BUILD" --rounds "$rounds" --out "$W/compare"
      (cd "$W" && tar czf compare.tgz --exclude='artifacts-*' compare && rm -rf compare) ;;
    pack)  # everything but the console in one file: the device tool returns only a few
      tar czf /tmp/results.tgz -C "$W" --exclude=console.log --exclude='*.tgz' . &&
        (cd "$W" && find . -mindepth 1 -maxdepth 1 ! -name console.log ! -name '*.tgz' -exec rm -rf {} +) &&
        mv /tmp/results.tgz "$W/" ;;
  esac
done
stage done
