#!/usr/bin/env bash
# Validation on a 4×H200 NVSwitch host (device kind nvidia-h200-x4). Run from the repo root;
# everything it saw goes to $OUT/validation.tgz (the device tool returns at most 8 files).
# It never touches NCCL_NVLS_ENABLE, TORCH_SYMM_MEM_DISABLE_MULTICAST or NVSHMEM_DISABLE_NVLS:
# ranks inherit them from this environment.
set -u
W=/tmp/gpufabric-validation
rm -rf "$W" && mkdir -p "$W"
exec > >(tee "$W/console.log") 2>&1
export PYTHONUNBUFFERED=1
stage() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

stage host
nvidia-smi -L
nvidia-smi --query-gpu=index,name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current --format=csv
env | grep -E '^(NCCL|TORCH|NVSHMEM|CUDA)_' | sort
python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.nccl.version(), torch.cuda.device_count())'
python3 -m pytest --version

stage install
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -3
python3 -c 'import pytest_gpufabric, sys; print("installed", pytest_gpufabric.__file__)'

for stage_name in "$@"; do
  case "$stage_name" in
    healthy)
      stage "healthy suite x3 (hgx-h200-4gpu)"
      python3 benchmarks/suite_wall.py --instance hgx-h200-4gpu --repeat 3 --out "$W/healthy" ;;
    nchannels1)
      stage "NCCL_MAX_NCHANNELS=1 (expected: bandwidth failures)"
      NCCL_MAX_NCHANNELS=1 python3 benchmarks/suite_wall.py --instance hgx-h200-4gpu --out "$W/nchannels1"
      grep -E "^(FAILED|PASSED|ERROR)" "$W/nchannels1/run1/pytest.log" | head -40
      sed -n '/= FAILURES =/,/short test summary/p' "$W/nchannels1/run1/pytest.log" | head -60 ;;
    floors)
      stage "measure x3 (broadcast included), derive floors from run A + these runs"
      python3 benchmarks/suite_wall.py --instance hgx-h200-4gpu --repeat 3 --out "$W/measure"
      mkdir -p "$W/final"
      python3 -m pytest_gpufabric.floors "$W"/measure/run*/report.json tests/data/runs/2026-11-22-h200x4-A/run*.json \
        --name hgx-h200-4gpu --host-label "nvidia-h200-x4 (4×H200 NVSwitch VM)" \
        --description "4 × NVIDIA H200 (141 GB) on NVSwitch, one host, NVLink SHARP (NVLS) off" \
        > "$W/final/hgx-h200-4gpu.yaml"
      cat "$W/final/hgx-h200-4gpu.yaml"
      stage "final floors: healthy x3"
      python3 benchmarks/suite_wall.py --instance hgx-h200-4gpu --repeat 3 --out "$W/final-healthy" -- --gpufabric-thresholds "$W/final"
      stage "final floors: NCCL_MAX_NCHANNELS=1"
      NCCL_MAX_NCHANNELS=1 python3 benchmarks/suite_wall.py --instance hgx-h200-4gpu --out "$W/final-nchannels1" -- --gpufabric-thresholds "$W/final"
      grep -E "^(FAILED|PASSED) " "$W/final-nchannels1/run1/pytest.log"
      sed -n '/= FAILURES =/,/short test summary/p' "$W/final-nchannels1/run1/pytest.log" | grep -A6 "test_busbw\[all_reduce-1GiB\] _" ;;
    transports)
      for run in healthy p2p_disabled; do
        if [ "$run" = p2p_disabled ]; then export NCCL_P2P_DISABLE=1; fi
        stage "live suite, $run"
        python3 -m pytest suites/ -p no:cacheprovider -rfE --gpufabric-instance hgx-h200-4gpu \
          --gpufabric-artifacts "$W/live-$run" --gpufabric-json "$W/live-$run.json" \
          --junitxml "$W/live-$run.xml" > "$W/live-$run.log" 2>&1; grep -vE "^(PASSED|FAILED)  " "$W/live-$run.log" | head -60
        unset NCCL_P2P_DISABLE
        stage "replay of the live $run bundle"
        python3 -m pytest suites/ -p no:cacheprovider -q --gpufabric-replay "$W/live-$run" \
          --gpufabric-instance hgx-h200-4gpu --gpufabric-json "$W/replay-$run.json" > "$W/replay-$run.log" 2>&1
        tail -1 "$W/replay-$run.log"
      done
      for fixture in default p2p_disabled; do
        python3 -m pytest suites/ -p no:cacheprovider -q --gpufabric-replay "tests/data/h200x4-nccl2.28.9/$fixture" \
          --gpufabric-instance hgx-h200-4gpu --gpufabric-json "$W/fixture-$fixture.json" > "$W/fixture-$fixture.log" 2>&1
      done
      stage "verdicts: healthy"
      python3 validation/compare_verdicts.py live="$W/live-healthy.json" replay="$W/replay-healthy.json" fixture="$W/fixture-default.json"
      stage "verdicts: NCCL_P2P_DISABLE=1"
      python3 validation/compare_verdicts.py live="$W/live-p2p_disabled.json" replay="$W/replay-p2p_disabled.json" fixture="$W/fixture-p2p_disabled.json"
      grep -A4 "test_nccl.intra_node_transport. _" "$W/live-p2p_disabled.log" | head -8 ;;
    host)
      stage "live suite with host checks"
      python3 -m pytest suites/ -p no:cacheprovider -rfEs --gpufabric-instance hgx-h200-4gpu \
        --gpufabric-artifacts "$W/host-live" --gpufabric-json "$W/host-live.json" \
        --junitxml "$W/host-live.xml" > "$W/host-live.log" 2>&1
      grep -vE "^(PASSED|FAILED)  " "$W/host-live.log" | tail -25
      python3 - "$W/host-live.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for t in d["tests"]:
    if "test_host" in t["nodeid"]:
        print(t["nodeid"].split("::")[-1], t["outcome"], {k: v for k, v in t["properties"].items()})
PY
      stage "replay of that bundle (host checks from its snapshots)"
      python3 -m pytest suites/test_host.py -p no:cacheprovider -q -rs --gpufabric-replay "$W/host-live" \
        --gpufabric-instance hgx-h200-4gpu --gpufabric-json "$W/host-replay.json" 2>&1 | tail -8
      python3 validation/compare_verdicts.py --match test_host live="$W/host-live.json" replay="$W/host-replay.json"
      stage "private 1 MiB /dev/shm (unshare -m)"
      unshare -m sh -c 'mount -t tmpfs -o size=1m tmpfs /dev/shm && df -h /dev/shm && python3 -m pytest suites/test_host.py -p no:cacheprovider -rfs -k "shm" --gpufabric-instance hgx-h200-4gpu --gpufabric-timeout 60 --gpufabric-json '"$W"'/shm-small.json' > "$W/shm-small.log" 2>&1
      echo "exit $?"; head -3 "$W/shm-small.log"; sed -n '/= FAILURES =/,$p' "$W/shm-small.log" | cut -c1-300 | head -40 ;;
    auto)
      stage "auto detection"
      python3 -m pytest suites/test_node.py --gpufabric-instance auto -q -p no:cacheprovider 2>&1 | tail -5 ;;
    repeat)
      stage "healthy gate x5 with the committed profile (auto; isolation runs included)"
      python3 benchmarks/suite_wall.py --repeat 5 --out "$W/repeat"
      grep -h "^FAILED" "$W"/repeat/run*/pytest.log | sort | uniq -c
      stage "healthy gate, two NCCL nodes"
      python3 benchmarks/suite_wall.py --out "$W/repeat-two" -- --gpufabric-emulate-nodes 2
      grep -h "^FAILED" "$W"/repeat-two/run*/pytest.log | sort | uniq -c ;;
    catalogue)
      stage "profile catalogue and detection on this host"
      python3 -m pytest --gpufabric-list -p no:cacheprovider
      python3 -m pytest_gpufabric.catalogue check
      mkdir -p "$W/twin" && sed 's/^name: hgx-h200-4gpu/name: twin-h200/' thresholds/hgx-h200-4gpu.yaml > "$W/twin/twin-h200.yaml"
      echo "--- a second 4 × H200 profile makes the fingerprint ambiguous:"
      python3 -m pytest suites/test_node.py -q -p no:cacheprovider --gpufabric-thresholds "$W/twin" 2>&1 | tail -2
      echo "--- the node label decides:"
      GPUFABRIC_NODE_INSTANCE_TYPE=twin-h200 python3 -m pytest suites/test_node.py -q -p no:cacheprovider --gpufabric-thresholds "$W/twin" 2>&1 | grep -E "^gpufabric: instance|passed|failed" ;;
    isolation)
      stage "measure x3: two NCCL nodes (NCCL_HOSTID) and the isolation runs, recording floors"
      for i in 1 2 3; do
        python3 -m pytest suites/test_bandwidth.py suites/test_isolation.py -p no:cacheprovider -q -rfs \
          --gpufabric-instance auto --gpufabric-emulate-nodes 2 --gpufabric-thresholds validation/profiles-measure \
          --gpufabric-json "$W/iso-measure$i.json" --gpufabric-artifacts "$W/iso-measure$i" > "$W/iso-measure$i.log" 2>&1
        tail -1 "$W/iso-measure$i.log"
      done
      mkdir -p "$W/iso-final"
      python3 -m pytest_gpufabric.floors "$W"/iso-measure*.json --name hgx-h200-4gpu --extends hgx-h200-4gpu \
        --section inter_node --section network_only --margins 0=0.5 \
        --host-label "nvidia-h200-x4 (4×H200 NVSwitch VM)" > "$W/iso-final/hgx-h200-4gpu.yaml"
      cat "$W/iso-final/hgx-h200-4gpu.yaml"
      python3 - "$W"/iso-measure*.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    for t in json.load(open(path))["tests"]:
        p = t["properties"]
        if "busbw_gbps" in p:
            print(path.rsplit("/", 1)[-1], p.get("run"), p["collective"], p["bytes"], p["busbw_gbps"], t["outcome"])
PY
      for mode in one two; do
        extra=""; [ "$mode" = two ] && extra="--gpufabric-emulate-nodes 2"
        stage "final: every suite, auto, $mode node(s), derived floors"
        python3 -m pytest suites/ -p no:cacheprovider -rfEs --gpufabric-instance auto $extra \
          --gpufabric-thresholds "$W/iso-final" --gpufabric-artifacts "$W/final-$mode" \
          --gpufabric-json "$W/final-$mode.json" --junitxml "$W/final-$mode.xml" > "$W/final-$mode.log" 2>&1
        grep -E "^gpufabric:|^(PASSED|FAILED|WARN|SKIPPED) |passed|failed" "$W/final-$mode.log" | tail -30
        stage "replay of the $mode-node bundle"
        python3 -m pytest suites/ -p no:cacheprovider -q --gpufabric-replay "$W/final-$mode" --gpufabric-instance hgx-h200-4gpu \
          --gpufabric-thresholds "$W/iso-final" --gpufabric-json "$W/replay-$mode.json" > "$W/replay-$mode.log" 2>&1
        tail -1 "$W/replay-$mode.log"
        python3 validation/compare_verdicts.py --match test_ live="$W/final-$mode.json" replay="$W/replay-$mode.json"
      done
      sed -n '/test_isolation_path\[network_only\]/,+3p' "$W/final-one.log" | head -8 ;;
  esac
done

stage pack
tar czf "$OUT/validation.tgz" -C "$W" .
ls -la "$OUT"
