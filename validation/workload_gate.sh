#!/usr/bin/env bash
# Issue 14 follow-up on nvidia-h200-x2: the workload suite inside the full gate. Three full
# runs of every suite; the workload floors derived from them and the three runs of run M;
# a fourth full run and a workload-only run judged by that profile.
set -u
W=$OUT
mkdir -p "$W/runs" "$W/profiles-lab2"
export PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONPATH="$(pwd)"
gate() {  # LABEL PROFILES [paths]
  local label=$1 profiles=$2; shift 2
  timeout 200 python3 -m pytest -p pytest_gpufabric.plugin -p no:cacheprovider -q -rfs "$@" \
    --gpufabric-thresholds "$profiles" --gpufabric-instance h200-2gpu-lab \
    --gpufabric-artifacts "$W/runs/$label" --gpufabric-json "$W/runs/$label.report.json" \
    > "$W/runs/$label.out.txt" 2>&1
  echo "$label: exit $?; $(grep -E '^(NOT )?CERTIFIED' "$W/runs/$label.out.txt")"
  grep -E "^FAILED|[0-9]+ (passed|failed)" "$W/runs/$label.out.txt" | tail -5
  echo "  rank processes left: $(pgrep -f '[p]ytest_gpufabric.rank.worker' | wc -l)"
}
for i in 1 2 3; do gate full$i validation/profiles-lab2 pytest_gpufabric/suites; done
M=tests/data/runs/2026-11-30-h200x2-workload-floors
K=tests/data/runs/2026-11-30-h200x2-K
python3 -m pytest_gpufabric.floors $K/healthy{1,2,3}/report.json $M/healthy{1,2,3}.report.json \
  "$W"/runs/full{1,2,3}.report.json \
  --name h200-2gpu-lab --extends hgx-h200-4gpu --host-label "nvidia-h200-x2 (2×H200 NVSwitch VM)" \
  --section intra_node --section network_only --section nvlink_only --section workload \
  --section-margins network_only:0=0.5 --section-margins nvlink_only:256MiB=0.9,0=0.5 \
  > "$W/profiles-lab2/h200-2gpu-lab.yaml" 2> "$W/floors.err"
echo "floors: exit $?"; cat "$W/floors.err"; sed -n '/^workload:/,$p' "$W/profiles-lab2/h200-2gpu-lab.yaml"
gate judged-full "$W/profiles-lab2" pytest_gpufabric/suites
gate judged-workload "$W/profiles-lab2" pytest_gpufabric/suites/test_workload.py
cd "$W" && tar czf gpu2.tgz runs profiles-lab2 && rm -rf runs profiles-lab2
