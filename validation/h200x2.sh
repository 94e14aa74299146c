#!/usr/bin/env bash
# Validation on a 2×H200 NVSwitch host (device kind nvidia-h200-x2): this tree against an
# earlier one, run by run on the same machine. Run from the repo root:
#
#   bash validation/h200x2.sh BASELINE_DIR STAGE...
#
# BASELINE_DIR holds the earlier tree (git archive of the commit to compare with; the device
# tool carries it as an ignored folder). Both trees run from their checkouts, uninstalled,
# with the 2-GPU smoke overlay (validation/profiles-smoke). Everything goes to
# $OUT/validation.tgz and $OUT/summary.txt. Ranks inherit NCCL_NVLS_ENABLE,
# TORCH_SYMM_MEM_DISABLE_MULTICAST and NVSHMEM_DISABLE_NVLS from this environment unchanged.
set -u
BASE=$(cd "$1" && pwd); shift
NEW=$(pwd)
W=/tmp/gpufabric-validation
rm -rf "$W" && mkdir -p "$W"
exec > >(tee "$W/console.log") 2>&1
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
stage() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

# gate TREE LABEL [pytest args...]: every suite of TREE with the smoke overlay; report $W/LABEL.json
gate() {
  local tree=$1 label=$2; shift 2
  local t0=$(date +%s%N)
  (cd "$tree" && PYTHONPATH="$tree" python3 -m pytest -p pytest_gpufabric.plugin suites/ \
    -p no:cacheprovider -q -rfE --gpufabric-instance auto \
    --gpufabric-thresholds "$NEW/validation/profiles-smoke" \
    --gpufabric-json "$W/$label.json" --gpufabric-artifacts "$W/$label" "$@") > "$W/$label.log" 2>&1
  local rc=$?
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%-28s exit %s  %6d ms  %s\n' "$label" "$rc" "$ms" \
    "$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$W/$label.log" | tail -1)"
  grep -E "^(NOT )?CERTIFIED" "$W/$label.log" | head -1
}

stage host
nvidia-smi -L
nvidia-smi topo -m | head -5
env | grep -E '^(NCCL|TORCH|NVSHMEM|CUDA)_' | sort
python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.nccl.version(), torch.cuda.device_count())'
python3 -m pytest --version
echo "earlier tree: $(cat "$BASE/COMMIT" 2>/dev/null || echo unknown)"

for stage_name in "$@"; do
  case "$stage_name" in
    healthy)
      stage "healthy gate x3, earlier tree and this tree in turn"
      for i in 1 2 3; do
        gate "$BASE" "base-healthy$i"
        gate "$NEW" "new-healthy$i"
      done ;;
    this)
      stage "this tree alone: healthy, NCCL_P2P_DISABLE=1, two emulated nodes"
      gate "$NEW" new-healthy1
      NCCL_P2P_DISABLE=1 gate "$NEW" new-p2p-off
      gate "$NEW" new-two --gpufabric-emulate-nodes 2 ;;
    faults)
      stage "NCCL_P2P_DISABLE=1 (expected: the intra-node transport checks fail naming SHM)"
      NCCL_P2P_DISABLE=1 gate "$BASE" base-p2p-off
      NCCL_P2P_DISABLE=1 gate "$NEW" new-p2p-off
      grep -A3 "test_nccl.intra_node_transport. _" "$W/new-p2p-off.log" | head -5
      stage "two emulated nodes (NCCL_HOSTID)"
      gate "$BASE" base-two --gpufabric-emulate-nodes 2
      gate "$NEW" new-two --gpufabric-emulate-nodes 2 ;;
    replay)
      stage "replay of this tree's live bundles with this tree"
      for label in new-healthy1 new-p2p-off new-two; do
        [ -d "$W/$label" ] || continue
        (cd "$NEW" && PYTHONPATH="$NEW" python3 -m pytest -p pytest_gpufabric.plugin suites/ \
          -p no:cacheprovider -q --gpufabric-replay "$W/$label" --gpufabric-instance auto \
          --gpufabric-thresholds "$NEW/validation/profiles-smoke" \
          --gpufabric-json "$W/replay-$label.json") > "$W/replay-$label.log" 2>&1
        echo "replay-$label exit $? $(tail -1 "$W/replay-$label.log")"
      done ;;
    deadline)
      stage "a rank stopped inside an NCCL collective: the job deadline names it, nothing is left"
      cat > "$W/test_stopped_rank.py" <<'PY'
import os, signal
from pathlib import Path
from pytest_gpufabric import CorrectnessCase
from pytest_gpufabric.collectives import Collective

def test_stopped(gpufabric):
    pool = gpufabric.pool()
    Path(os.environ["PIDS"]).write_text(" ".join(map(str, pool.pids)))
    os.kill(pool.pids[1], signal.SIGSTOP)
    gpufabric.check_correctness(CorrectnessCase(Collective.ALL_REDUCE, 65537, "bfloat16"))
PY
      t0=$(date +%s)
      (cd "$W" && PIDS="$W/pids" PYTHONPATH="$NEW" python3 -m pytest -p pytest_gpufabric.plugin \
        test_stopped_rank.py -p no:cacheprovider -q --gpufabric-timeout 10 \
        --gpufabric-thresholds "$NEW/validation/profiles-smoke") > "$W/deadline.log" 2>&1
      echo "exit $? after $(( $(date +%s) - t0 )) s"
      grep -E "rank pool|rank [01]:" "$W/deadline.log" | head -4
      for pid in $(cat "$W/pids"); do [ -d "/proc/$pid" ] && echo "LEFT RUNNING: $pid"; done
      echo "ranks left: $(for pid in $(cat "$W/pids"); do [ -d /proc/$pid ] && echo $pid; done | wc -l)" ;;
  esac
done

stage "verdicts and busbw"
python3 - "$W" <<'PY' | tee "$W/summary-table.txt"
import json, statistics, sys
from pathlib import Path
w = Path(sys.argv[1])

def load(name):
    path = w / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None

def outcomes(report):
    return {t["nodeid"].split("::", 1)[-1]: t["outcome"] for t in report["tests"]}

def busbw(report):
    out = {}
    for t in report["tests"]:
        p = t["properties"]
        if "busbw_gbps" in p:
            out[(p.get("run", "default"), p["collective"], int(p["bytes"]))] = float(p["busbw_gbps"])
    return out

pairs = [(f"base-healthy{i}", f"new-healthy{i}") for i in (1, 2, 3)]
pairs += [("base-p2p-off", "new-p2p-off"), ("base-two", "new-two")]
pairs += [(f"new-{x}", f"replay-new-{x}") for x in ("healthy1", "p2p-off", "two")]
for a, b in pairs:
    ra, rb = load(a), load(b)
    if ra is None or rb is None:
        continue
    oa, ob = outcomes(ra), outcomes(rb)
    differ = sorted(t for t in set(oa) | set(ob) if oa.get(t) != ob.get(t))
    print(f"{a} vs {b}: {len(oa)} / {len(ob)} tests, {len(differ)} different verdicts")
    for t in differ:
        print(f"   {t}: {oa.get(t)} -> {ob.get(t)}")
    cert = (rb.get("certification") or {}).get("verdict")
    if cert:
        print(f"   {b}: {cert}: {rb['certification']['reason']}")
base = [busbw(r) for r in (load(f"base-healthy{i}") for i in (1, 2, 3)) if r]
new = [busbw(r) for r in (load(f"new-healthy{i}") for i in (1, 2, 3)) if r]
if base and new:
    print("\nbusbw GB/s, median of the healthy runs (earlier tree | this tree | ratio)")
    for key in sorted(set(base[0]) & set(new[0])):
        b = statistics.median(r[key] for r in base if key in r)
        n = statistics.median(r[key] for r in new if key in r)
        spread = max(r[key] for r in new if key in r) - min(r[key] for r in new if key in r)
        print(f"{key[0]:13} {key[1]:15} {key[2] >> 20:5} MiB  {b:8.1f} | {n:8.1f} | {n / b:5.3f}  (this tree's spread {spread:.1f})")
PY

stage pack
cp "$W/console.log" "$OUT/summary.txt"
tar czf "$OUT/validation.tgz" -C "$W" .
ls -la "$OUT"
