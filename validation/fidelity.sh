#!/usr/bin/env bash
# Issue 11 on a GPU host (device kind nvidia-h200-x2): measurement fidelity against nccl-tests,
# latency, time to verdict, faults with their causes, a node without a profile. From the repo
# root:
#
#   bash validation/fidelity.sh STAGE...
#
# Stages: build (nccl-tests from .nccl-tests/, an ignored folder with NVIDIA/nccl-tests'
# source; binaries kept in $OUT/nccl-tests-build), compare[N] (benchmarks/nccl_compare.py,
# N rounds; binaries from .nccl-tests-build/ or the build stage), gate (the default gate with
# the smoke overlay, 3 times, wall time), noprofile (no profile matches), faults. The tree
# runs uninstalled (PYTHONPATH). Ranks inherit NCCL_NVLS_ENABLE,
# TORCH_SYMM_MEM_DISABLE_MULTICAST and NVSHMEM_DISABLE_NVLS from this environment unchanged.
set -u
TREE=$(pwd)
W=${OUT:-/tmp/gpufabric-fidelity}
mkdir -p "$W"
exec > >(tee -a "$W/console.log") 2>&1
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH="$TREE"
stage() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
BUILD="$TREE/.nccl-tests-build"

# gate LABEL [pytest args...]: every suite; report $W/LABEL.json, bundle $W/LABEL/
gate() {
  local label=$1; shift
  local t0=$(date +%s%N)
  python3 -m pytest -p pytest_gpufabric.plugin suites/ -p no:cacheprovider -q -rfE \
    --junitxml "$W/$label.xml" --gpufabric-json "$W/$label.json" \
    --gpufabric-artifacts "$W/$label" "$@" > "$W/$label.log" 2>&1
  local rc=$?
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  local junit_ms=$(( $(python3 -c 'import os, sys; print(int(os.stat(sys.argv[1]).st_mtime * 1000))' "$W/$label.xml" 2>/dev/null || echo 0) - t0 / 1000000 ))
  printf '%-22s exit %s  %6d ms (JUnit written at %d ms)  %s\n' "$label" "$rc" "$ms" "$junit_ms" \
    "$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$W/$label.log" | tail -1)"
  grep -E "^(NOT )?CERTIFIED" "$W/$label.log" | head -1
}
smoke=(--gpufabric-instance auto --gpufabric-thresholds "$TREE/validation/profiles-smoke")

stage host
nvidia-smi -L
nvidia-smi topo -m | head -4
env | grep -E '^(NCCL|TORCH|NVSHMEM|CUDA)_' | sort
python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.nccl.version(), torch.cuda.device_count())'

for stage_name in "$@"; do
  case "$stage_name" in
    build)
      stage "build nccl-tests"
      NCCL_DIR=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])')
      H=/tmp/ncclhome && rm -rf $H && mkdir -p $H/lib
      ln -s "$NCCL_DIR/include" $H/include
      ln -s "$NCCL_DIR"/lib/libnccl.so.2 $H/lib/libnccl.so
      ln -s "$NCCL_DIR"/lib/libnccl.so.2 $H/lib/libnccl.so.2
      rm -rf /tmp/nt && cp -r "$TREE/.nccl-tests" /tmp/nt
      (cd /tmp/nt && make -j16 MPI=0 NCCL_HOME=$H CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} \
        NVCC_GENCODE="-gencode=arch=compute_90,code=sm_90" > "$W/nccl-tests-make.log" 2>&1)
      echo "make exit $?"; tail -3 "$W/nccl-tests-make.log"
      mkdir -p "$W/nccl-tests-build" && cp /tmp/nt/build/*_perf "$W/nccl-tests-build/"
      BUILD="$W/nccl-tests-build"; ls -la "$BUILD" ;;
    compare*)
      rounds=${stage_name#compare}; rounds=${rounds:-3}
      stage "ours vs nccl-tests, $rounds rounds"
      export LD_LIBRARY_PATH=/tmp/ncclhome/lib:${LD_LIBRARY_PATH:-}
      if [ ! -e /tmp/ncclhome/lib/libnccl.so.2 ]; then
        NCCL_DIR=$(python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])')
        mkdir -p /tmp/ncclhome/lib && ln -sf "$NCCL_DIR"/lib/libnccl.so.2 /tmp/ncclhome/lib/libnccl.so.2
      fi
      chmod +x "$BUILD"/*_perf
      python3 benchmarks/nccl_compare.py --nccl-tests "$BUILD" --rounds "$rounds" --out "$W/compare" ;;
    gate*)
      runs=${stage_name#gate}; runs=${runs:-3}
      stage "default gate, smoke overlay, $runs runs"
      for i in $(seq 1 "$runs"); do gate "healthy$i" "${smoke[@]}"; done ;;
    noprofile)
      stage "no profile matches this node (auto, shipped profiles only)"
      gate noprofile --gpufabric-instance auto
      grep -E "NOT CERTIFIED|profile|SKIPPED" "$W/noprofile.log" | head -20 ;;
    faults)
      stage "NCCL_MAX_NCHANNELS=1"
      NCCL_MAX_NCHANNELS=1 gate nchannels1 "${smoke[@]}"
      stage "NCCL_SOCKET_IFNAME=bogus0 over two NCCL nodes"
      NCCL_SOCKET_IFNAME=bogus0 gate bogus-ifname "${smoke[@]}" --gpufabric-emulate-nodes 2
      stage "1 MiB /dev/shm (unshare -m)"
      unshare -m bash -c "mount -t tmpfs -o size=1m tmpfs /dev/shm && cd '$TREE' && \
        $(declare -f gate); W='$W'; gate tiny-shm ${smoke[*]}" ;;
  esac
done
stage done
