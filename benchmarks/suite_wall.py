"""Wall time of the default suite, from pytest's start to the JUnit file being written, and
the bus bandwidth it measured next to the profile's floors.

    python benchmarks/suite_wall.py --instance hgx-h200-4gpu --repeat 3 --out bench/

Target (issue 2): <= 30 s wall on 4 GPUs. Prints one line per run and a table of busbw.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def run_once(instance: str, out: Path, extra: list[str]) -> tuple[float, int, dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    junit, report = out / "junit.xml", out / "report.json"
    for stale in (junit, report):
        stale.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", str(REPO / "suites"), "-q", "-p", "no:cacheprovider",
        f"--gpufabric-instance={instance}", f"--junitxml={junit}", f"--gpufabric-json={report}",
        f"--gpufabric-artifacts={out / 'artifacts'}", *extra,
    ]  # fmt: skip
    t0 = time.time()
    with (out / "pytest.log").open("w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    wall = junit.stat().st_mtime - t0 if junit.exists() else float("nan")
    data = json.loads(report.read_text()) if report.exists() else {}
    return wall, rc, data


def busbw_rows(data: dict[str, Any]) -> list[tuple[str, str, float, float | None, str]]:
    rows = []
    for test in data.get("tests", []):
        props = test["properties"]
        if "busbw_gbps" in props:
            run = props.get("run", "default")
            rows.append(
                (
                    props["collective"] if run == "default" else f"{run}:{props['collective']}",
                    str(props["bytes"]),
                    float(props["busbw_gbps"]),
                    props.get("threshold_gbps"),
                    test["outcome"],
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instance", default="auto")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("gpufabric-bench"))
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)
    walls, tables = [], []
    worst_rc = 0
    for i in range(args.repeat):
        wall, rc, data = run_once(args.instance, args.out / f"run{i + 1}", args.pytest_args)
        walls.append(wall)
        worst_rc = max(worst_rc, rc)
        summary = data.get("summary", {})
        run = data.get("run", {})
        print(
            f"run {i + 1}: wall {wall:6.1f} s (pytest start -> JUnit written), exit {rc}, "
            f"{summary}, ranks {run.get('nranks')}, NCCL {run.get('nccl_version', '-')}"
        )
        tables.append(busbw_rows(data))
    if len(walls) > 1:
        median = statistics.median(walls)
        print(f"wall: min {min(walls):.1f} s, median {median:.1f} s, max {max(walls):.1f} s")
    if tables and tables[0]:
        runs = " ".join(f"{'run' + str(i + 1):>8}" for i in range(len(tables)))
        print(f"{'collective':28} {'bytes':>11} {runs} {'floor':>8}")
        for row_index, row in enumerate(tables[0]):
            values = []
            for table in tables:
                values.append(
                    f"{table[row_index][2]:8.1f}" if row_index < len(table) else f"{'-':>8}"
                )
            floor = f"{row[3]:8.1f}" if row[3] is not None else f"{'-':>8}"
            print(f"{row[0]:28} {row[1]:>11} " + " ".join(values) + f" {floor}")
    return worst_rc


if __name__ == "__main__":
    sys.exit(main())
