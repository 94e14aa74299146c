"""Replay every recorded capture of this repository (and ../shared/fixtures when present)
with the shipped suites and keep one --gpufabric-json report per capture:

    python validation/replay_corpus.py OUT_DIR

Then compare two such directories (e.g. before and after a change) test by test:

    python validation/replay_corpus.py --compare BEFORE_DIR AFTER_DIR

which prints validation/compare_verdicts.py's table for every capture and exits 1 if any
verdict differs. Verdicts are per test (passed/failed/skipped); the run's exit code is not
compared, so a change of the certification rules does not hide a changed test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared" / "fixtures"

# (label, directory, instance)
H200 = ("default", "p2p_disabled", "socket_only", "two_node_hostid", "nccl-tests", "host")


def captures() -> list[tuple[str, Path, str]]:
    found: list[tuple[str, Path, str]] = []
    roots = ((DATA / "h200x4-nccl2.28.9", "data"), (SHARED / "h200x4-nccl2.28.9", "shared"))
    for root, tag in roots:
        if not root.is_dir():
            continue
        for name in H200:
            found.append((f"{tag}-{name}", root / name, "hgx-h200-4gpu"))
        found.append((f"{tag}-two_node_hostid-p4d", root / "two_node_hostid", "p4d.24xlarge"))
        found.append((f"{tag}-nccl-tests-auto", root / "nccl-tests", "auto"))
    for run in sorted((DATA / "runs").iterdir()):
        found.append((f"run-{run.name}", run, "hgx-h200-4gpu"))
    found.append(("seeds-p4d", DATA / "seeds", "p4d.24xlarge"))
    return found


def record(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for label, directory, instance in captures():
        report = out / f"{label}.json"
        cmd = [
            sys.executable, "-m", "pytest", str(REPO / "suites"), "-q", "-p", "no:cacheprovider",
            f"--gpufabric-replay={directory}", f"--gpufabric-instance={instance}",
            f"--gpufabric-json={report}", "--gpufabric-allow-uncertified",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if "--gpufabric-allow-uncertified" in done.stderr and "unrecognized" in done.stderr:
            cmd.remove("--gpufabric-allow-uncertified")  # code from before that option
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"{label:45} exit {done.returncode}  {last}")
    return 0


def compare(before: Path, after: Path) -> int:
    differ = 0
    for old in sorted(before.glob("*.json")):
        new = after / old.name
        print(f"=== {old.stem}")
        if not new.exists():
            print("missing after")
            differ += 1
            continue
        done = subprocess.run(
            [sys.executable, str(REPO / "validation" / "compare_verdicts.py"), "--match", "",
             f"before={old}", f"after={new}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = done.stdout.strip().splitlines()
        rows = lines[1:-1]  # header and SAME/DIFFERENT
        changed = [row for row in rows if len(set(row.split()[1:])) > 1]
        print("\n".join([lines[0], *changed, lines[-1]] if done.returncode else lines[-1:]))
        differ += done.returncode != 0
    print(f"{differ} capture(s) with different verdicts")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("out", nargs="?", type=Path)
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("give OUT_DIR, or --compare BEFORE AFTER")
    return record(args.out)


if __name__ == "__main__":
    sys.exit(main())
