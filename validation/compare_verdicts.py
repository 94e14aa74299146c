"""Compare the verdicts of several --gpufabric-json reports test by test.

    python validation/compare_verdicts.py --match test_nccl live=a.json replay=b.json ...

Prints one row per test and a last line SAME or DIFFERENT; exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def outcomes(path: Path, match: str) -> dict[str, str]:
    data = json.loads(path.read_text())
    return {
        t["nodeid"].split("::", 1)[-1]: t["outcome"] for t in data["tests"] if match in t["nodeid"]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--match", default="test_nccl")
    parser.add_argument("reports", nargs="+", help="label=report.json")
    args = parser.parse_args(argv)
    labelled = [item.split("=", 1) for item in args.reports]
    tables = {label: outcomes(Path(path), args.match) for label, path in labelled}
    tests = sorted({t for table in tables.values() for t in table})
    width = max(len(t) for t in tests) if tests else 10
    print(f"{'test':{width}} " + " ".join(f"{label:>14}" for label in tables))
    differ = False
    for test in tests:
        row = [tables[label].get(test, "-") for label in tables]
        differ |= len(set(row)) > 1
        print(f"{test:{width}} " + " ".join(f"{v:>14}" for v in row))
    print("DIFFERENT" if differ else "SAME")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
